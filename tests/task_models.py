"""Small real classify and tag model folders for the runtime's tests, built the way the task
export writes them (graph names from runtime/graphs.py, manifest by runtime/artifact.py): a word
+ shape + suffix embedding, an LSTM and a linear head, trained for a few seconds on a toy
grammar, exported with torch.onnx and quantised to int8, weights in the shared external-data
file. The real exporter's folders replace these once they exist.

Sentences: "<subject> <verb> <object> [in <place>] <end>" with names for some subjects::

    classify  label = the sentence's mood from its last piece: statement "." | question "?" |
              exclamation "!"
    tag       B-NAME/I-NAME on name pieces ("Anna", "John Smith"), B-PLACE/I-PLACE on places
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import torch
from torch import nn

from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import write_manifest
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS, features, words_of

NAMES = ["Anna", "John Smith", "Mary", "Peter Paul Jones", "Ruth", "Élodie Müller"]
COMMON = ["the cat", "a dog", "my friend", "the old man"]
VERBS = ["sees", "likes", "follows", "finds"]
OBJECTS = ["the ball", "a tree", "the red house", "Anna", "Mary"]
PLACES = ["Paris", "New York", "the garden", "Rome"]
MOODS = {".": "statement", "?": "question", "!": "exclamation"}
CLASSIFY_LABELS = list(MOODS.values())
TAG_LABELS = ["O", "B-NAME", "I-NAME", "B-PLACE", "I-PLACE"]


def _sentence(rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    """(phrase, entity type or "") parts and the end mark of one sentence."""
    subject = rng.choice(NAMES + COMMON)
    obj = rng.choice(OBJECTS)
    parts = [(subject, "NAME" if subject in NAMES else ""), (rng.choice(VERBS), ""),
             (obj, "NAME" if obj in NAMES else "")]
    if rng.random() < 0.5:
        place = rng.choice(PLACES)
        parts += [("in", ""), (place, "PLACE" if place[0].isupper() else "")]
    return parts, rng.choice(list(MOODS))


def examples(n: int, seed: int = 0) -> list[tuple[str, int, list[int]]]:
    """(text, mood label id, tag ids per whitespace word) of ``n`` sentences."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts, end = _sentence(rng)
        words, tags = [], []
        for phrase, kind in parts:
            for i, word in enumerate(phrase.split()):
                words.append(word)
                tags.append(TAG_LABELS.index(f"{'B' if i == 0 else 'I'}-{kind}") if kind else 0)
        out.append((" ".join(words) + " " + end, CLASSIFY_LABELS.index(MOODS[end]), tags + [0]))
    return out


class Net(nn.Module):
    """Embeddings of id, shape and suffix -> LSTM -> a classify (masked mean) or tag head."""

    def __init__(self, vocab: int, n_out: int, tag: bool) -> None:
        super().__init__()
        self.tag = tag
        self.word = nn.Embedding(vocab, 24)
        self.shape = nn.Embedding(len(SHAPES), 6)
        self.suffix = nn.Embedding(SUFFIX_BUCKETS, 6)
        self.rnn = nn.LSTM(36, 32, batch_first=True)
        self.head = nn.Linear(32, n_out)

    def forward(self, tokens: torch.Tensor, shapes: torch.Tensor, suffixes: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(tokens.shape[1])[None, :] < lengths[:, None]).float()  # [B, L]
        x = torch.cat([self.word(tokens), self.shape(shapes), self.suffix(suffixes)], -1)
        out, _ = self.rnn(x * mask[..., None])                       # [B, L, H]
        if self.tag:
            return torch.log_softmax(self.head(out), -1)             # [B, L, T]
        pooled = (out * mask[..., None]).sum(1) / lengths[:, None].float()
        return torch.log_softmax(self.head(pooled), -1)              # [B, C]


def _batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, ...]:
    rows = [words_of(tokenizer, t) for t in texts]
    width = max(len(ids) for _, ids in rows)
    arrays = torch.zeros(3, len(rows), width, dtype=torch.long)
    for r, (words, ids) in enumerate(rows):
        shapes, suffixes = features(words)
        arrays[0, r, :len(ids)] = torch.tensor(ids)
        arrays[1, r, :len(ids)] = torch.tensor(shapes)
        arrays[2, r, :len(ids)] = torch.tensor(suffixes)
    lengths = torch.tensor([len(ids) for _, ids in rows])
    return arrays[0], arrays[1], arrays[2], lengths


def build_folder(task: str, out: Path, steps: int = 150, seed: int = 0) -> Path:
    """Train and write a ``task`` ("classify" or "tag") model folder at ``out``."""
    from pocketlm.export.portable import share_weights
    from pocketlm.export.quantize import quantize_graph
    from pocketlm.pipeline.ingest import build_tokenizer

    torch.manual_seed(seed)
    data = examples(600, seed)
    tokenizer = build_tokenizer([t for t, _, _ in data], 200)
    tag = task == graphs.TAG
    labels = TAG_LABELS if tag else CLASSIFY_LABELS
    net = Net(tokenizer.get_vocab_size(), len(labels), tag)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(steps):
        chunk = [data[(step * 16 + i) % len(data)] for i in range(16)]
        tokens, shapes, suffixes, lengths = _batch(tokenizer, [t for t, _, _ in chunk])
        out_lp = net(tokens, shapes, suffixes, lengths)
        if tag:
            gold = torch.zeros_like(tokens)
            for r, (_, _, tags) in enumerate(chunk):
                gold[r, :len(tags)] = torch.tensor(tags)  # one piece per word in this grammar
            mask = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
            loss = -out_lp.gather(-1, gold[..., None]).squeeze(-1)[mask].mean()
        else:
            loss = -out_lp.gather(-1, torch.tensor([y for _, y, _ in chunk])[:, None]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    example = _batch(tokenizer, ["Anna sees the cat in Paris !", "a dog ."])
    fp32 = out / graphs.task_graph_file(task)
    with warnings.catch_warnings():  # the TorchScript exporter's notices about itself
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, str(fp32), input_names=list(graphs.TASK_INPUTS),
                          output_names=[graphs.LOGPROBS],
                          dynamic_axes=graphs.task_dynamic_axes(task), opset_version=17,
                          dynamo=False)
    quantize_graph(fp32, out / graphs.task_graph_file(task, "int8"))
    precisions = ("fp32", "int8")
    for p in precisions:
        share_weights(out, [graphs.task_graph_file(task, p)], graphs.weights_file(p))
    files = ["tokenizer.json", *(graphs.task_graph_file(task, p) for p in precisions),
             *(graphs.weights_file(p) for p in precisions)]
    body = {"task": task, "labels": labels,
            "features": {"shapes": list(SHAPES), "suffix_buckets": SUFFIX_BUCKETS},
            "vocab_size": tokenizer.get_vocab_size(), "tokenizer": "tokenizer.json",
            "graphs": graphs.task_graph_specs(task, precisions),
            "weights": {p: graphs.weights_file(p) for p in precisions},
            "metrics": {}}
    write_manifest(out, "model", body, files)
    return out
