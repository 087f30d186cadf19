"""runtime/model.py: LanguageModel's scoring convention, batching, generation, precision, error
handling and its independence from the training stack, on the toy model."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import (EOS_ID, UNK_ID, ArtifactError, LanguageModel, PocketLMError,
                              SentenceScore, detokenize)

from .conftest import BLOCK_TRAINING_STACK, OBJECTS, SUBJECTS, VERBS, flip_byte



SENTENCES = ["the cat sees the ball .", "a child likes a tree !", "my friend",
             "the old man watches the river today .", "", "ball the . sees cat the",
             "the zebra sees quantum ."]


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def _by_steps(lm: LanguageModel, sentence: str) -> list[float]:
    """ln P of each word and the final <eos>, computed with the step graph from the zero state
    and <eos> as the first input: the documented convention, done by hand."""
    ids = lm.tokenize(sentence) + [EOS_ID]
    state = lm.initial_state(1)
    context = EOS_ID
    out = []
    for target in ids:
        logprobs, state = lm.step([context], state)
        out.append(float(logprobs[0, target]))
        context = target
    return out


def _broken_copy(toy_model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(toy_model, folder)
    return folder


# -- scoring ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sentence", ["the cat", "a bird follows the red house again .",
                                      "the zebra sees"])
def test_score_convention_by_hand(lm: LanguageModel, sentence: str) -> None:
    """score(s) = sum of ln P(w_i | <eos> w_1..w_{i-1}) + ln P(<eos> | <eos> s), from the zero
    state, as the step graph computes it token by token."""
    manual = _by_steps(lm, sentence)
    assert len(manual) == len(lm.tokenize(sentence)) + 1
    assert lm.score(sentence) == pytest.approx(sum(manual), abs=1e-4)
    per_token = [w.logprob for w in lm.full_scores(sentence)]
    np.testing.assert_allclose(per_token, manual, rtol=0, atol=1e-4)


def test_score_is_sum_of_full_scores(lm: LanguageModel) -> None:
    """score equals the sum of full_scores, whose last entry is the final <eos>; words keep
    their original spelling while tokens are the normalised vocabulary entries."""
    sentence = "The Cat sees the ZEBRA ."
    full = lm.full_scores(sentence)
    assert lm.score(sentence) == pytest.approx(sum(w.logprob for w in full), abs=1e-9)
    assert [w.word for w in full] == ["The", "Cat", "sees", "the", "ZEBRA", ".", "<eos>"]
    assert [w.token for w in full] == ["the", "cat", "sees", "the", "<unk>", ".", "<eos>"]
    assert [w.oov for w in full] == [False, False, False, False, True, False, False]
    assert all(w.logprob < 0 for w in full)


def test_score_batch_independent_of_batching(lm: LanguageModel) -> None:
    """A sentence scores the same alone, in any batch, in any order and with any batch size
    (padding never leaks into a score)."""
    alone = [lm.score(s) for s in SENTENCES]
    for batch_size in (1, 2, 3, 64):
        np.testing.assert_allclose(lm.score_batch(SENTENCES, batch_size=batch_size), alone,
                                   rtol=0, atol=1e-4)
    reordered = list(reversed(SENTENCES)) + SENTENCES[:2]
    np.testing.assert_allclose(lm.score_batch(reordered),
                               [lm.score(s) for s in reordered], rtol=0, atol=1e-4)
    # a short sentence next to a very long one
    long = " ".join(["the cat sees the ball ."] * 30)
    both = lm.score_batch(["my friend", long])
    assert both[0] == pytest.approx(alone[2], abs=1e-4)
    assert both[1] == pytest.approx(sum(_by_steps(lm, long)), abs=1e-3)
    assert lm.score_batch([]) == []


def test_analyze_counts(lm: LanguageModel) -> None:
    """analyze reports tokens = words + 1 and the number of out-of-vocabulary words."""
    result = lm.analyze(["the cat sees the ball .", "the zebra sees quantum physics", ""])
    assert [r.tokens for r in result] == [7, 6, 1]
    assert [r.oov for r in result] == [0, 3, 0]
    assert [r.sentence for r in result] == ["the cat sees the ball .",
                                            "the zebra sees quantum physics", ""]
    for r in result:
        assert r.perplexity == pytest.approx(math.exp(-r.logprob / r.tokens))


def test_empty_sentence(lm: LanguageModel) -> None:
    """The empty sentence scores ln P(<eos> | <eos>) and predicts one token."""
    logprobs, _ = lm.step([EOS_ID], lm.initial_state(1))
    (result,) = lm.analyze([""])
    assert result == SentenceScore("", result.logprob, 1, 0)
    assert result.logprob == pytest.approx(float(logprobs[0, EOS_ID]), abs=1e-5)
    assert lm.score("") == pytest.approx(result.logprob)
    assert [w.token for w in lm.full_scores("")] == ["<eos>"]


def test_toy_model_learned_grammar(lm: LanguageModel) -> None:
    """The toy model prefers grammatical sentences to shuffled ones (a sanity check that the
    scores mean something)."""
    good = lm.score("the cat sees the ball .")
    assert good > lm.score("ball the . sees cat the")
    assert good > lm.score("the cat the ball sees .")


def test_perplexity(lm: LanguageModel) -> None:
    """perplexity over lines = exp(-sum logprob / sum tokens); blank lines are skipped; a list
    gives the same as the joined string; no lines is an error."""
    lines = ["the cat sees the ball .", "a child likes a tree !", "my friend finds the river"]
    scored = lm.analyze(lines)
    expected = math.exp(-sum(s.logprob for s in scored) / sum(s.tokens for s in scored))
    assert lm.perplexity("\n".join(lines)) == pytest.approx(expected, rel=1e-9)
    assert lm.perplexity("\n\n".join(lines) + "\n   \n") == pytest.approx(expected, rel=1e-9)
    assert lm.perplexity(lines) == pytest.approx(expected, rel=1e-9)
    assert lm.perplexity(lines[:1]) == pytest.approx(scored[0].perplexity, rel=1e-9)
    for empty in ("", "\n  \n", []):
        with pytest.raises(PocketLMError):
            lm.perplexity(empty)


def test_rank(lm: LanguageModel) -> None:
    """rank returns every candidate, best (highest log-probability) first; ties keep input
    order."""
    ranked = lm.rank(SENTENCES)
    assert sorted(r.sentence for r in ranked) == sorted(SENTENCES)
    logprobs = [r.logprob for r in ranked]
    assert logprobs == sorted(logprobs, reverse=True)
    assert ranked[0].logprob == pytest.approx(max(lm.score(s) for s in SENTENCES))
    order = [r.sentence for r in lm.rank(["ball the . sees cat the", "the cat sees the ball ."])]
    assert order == ["the cat sees the ball .", "ball the . sees cat the"]
    # same tokens after normalisation -> identical scores -> input order kept
    assert [r.sentence for r in lm.rank(["THE CAT sees", "the cat sees"])] == ["THE CAT sees",
                                                                              "the cat sees"]
    assert [r.sentence for r in lm.rank(["the cat sees", "THE CAT sees"])] == ["the cat sees",
                                                                              "THE CAT sees"]
    assert lm.rank([]) == []


def test_membership(lm: LanguageModel) -> None:
    """`in` is true for single vocabulary words (after lowercasing), false otherwise."""
    for word in ("cat", "Cat", "the", ".", "river"):
        assert word in lm
    for word in ("zebra", "the cat", "", "<unk>x"):
        assert word not in lm
    assert lm.tokenizer.id_to_token(UNK_ID) == "<unk>"


# -- generation ---------------------------------------------------------------------------------

def _greedy_by_hand(lm: LanguageModel, max_words: int = 30) -> list[str]:
    state = lm.initial_state(1)
    logprobs, state = lm.step([EOS_ID], state)
    words = []
    for _ in range(max_words):
        scores = logprobs[0].astype(np.float64)
        scores[UNK_ID] = -np.inf
        token = int(np.argmax(scores))
        if token == EOS_ID:
            break
        words.append(lm.tokenizer.id_to_token(token))
        logprobs, state = lm.step([token], state)
    return words


def test_greedy_generation(lm: LanguageModel) -> None:
    """temperature 0 is greedy: one exact sequence (argmax at every step, computed here with the
    step graph), a sentence of the toy grammar."""
    words = _greedy_by_hand(lm)
    text = lm.generate(temperature=0)
    assert text == detokenize(words)
    assert lm.generate(temperature=0, seed=5) == text
    sentence = " ".join(words)
    assert any(sentence.startswith(s + " ") for s in SUBJECTS), sentence
    assert any(f" {v} " in f" {sentence} " for v in VERBS), sentence
    assert any(o in sentence for o in OBJECTS), sentence
    assert words[-1] in (".", "!")


def test_greedy_continues_prompt(lm: LanguageModel) -> None:
    """A prompt is fed after <eos> and only the continuation is returned."""
    text = lm.generate("the old man", temperature=0)
    assert not text.startswith("the old man")
    first = text.split()[0]
    assert first in VERBS
    state = lm.initial_state(1)
    for token in [EOS_ID, *lm.tokenize("the old man")]:
        logprobs, state = lm.step([token], state)
    assert lm.tokenizer.id_to_token(int(np.argmax(logprobs[0]))) == first


def test_seeded_generation_is_repeatable(lm: LanguageModel) -> None:
    """The same seed gives the same text; different seeds give different texts."""
    samples = [lm.generate(seed=s) for s in range(8)]
    assert samples == [lm.generate(seed=s) for s in range(8)]
    assert len(set(samples)) > 1
    assert lm.generate(top_k=3, top_p=0.9, temperature=0.8, seed=11) == \
        lm.generate(top_k=3, top_p=0.9, temperature=0.8, seed=11)


def test_top_k_and_top_p_limits(lm: LanguageModel) -> None:
    """top_k=1 and a tiny top_p reduce sampling to greedy; top_k >= the vocabulary keeps every
    word (same as no top_k)."""
    greedy = lm.generate(temperature=0)
    for seed in range(3):
        assert lm.generate(top_k=1, seed=seed) == greedy
        assert lm.generate(top_p=1e-9, seed=seed) == greedy
        assert lm.generate(top_k=lm.vocab_size + 5, seed=seed) == lm.generate(seed=seed)


def test_max_words(lm: LanguageModel) -> None:
    """Generation stops after max_words words; max_words=0 gives the empty string."""
    assert lm.generate(max_words=0, seed=0) == ""
    for n in (1, 2, 3):
        for seed in range(5):
            assert len(lm.generate(max_words=n, seed=seed, temperature=2.0).split()) <= n
    assert len(lm.generate(max_words=2, temperature=0).split()) == 2


def test_never_produces_unk(lm: LanguageModel) -> None:
    """<unk> is never generated by default, even at a high temperature after an unknown word;
    allow_unk=True lets it through."""
    for seed in range(20):
        assert "<unk>" not in lm.generate("zebra", max_words=15, temperature=3.0, seed=seed)
    produced = " ".join(lm.generate("zebra", max_words=15, temperature=50.0, seed=seed,
                                    allow_unk=True) for seed in range(40))
    assert "<unk>" in produced


@pytest.mark.parametrize("kwargs", [dict(max_words=-1), dict(temperature=-0.1), dict(top_k=-1),
                                    dict(top_p=0.0), dict(top_p=1.5)])
def test_generate_invalid_arguments(lm: LanguageModel, kwargs: dict) -> None:
    """Out-of-range generation settings raise PocketLMError."""
    with pytest.raises(PocketLMError):
        lm.generate(**kwargs)


# -- precision ----------------------------------------------------------------------------------

def test_int8_close_to_fp32(toy_model: Path, lm: LanguageModel) -> None:
    """The int8 graphs load and give a perplexity within a few percent of fp32."""
    int8 = LanguageModel(toy_model, precision="int8", threads=1)
    assert int8.precision == "int8"
    lines = [s for s in SENTENCES if s]
    fp32_ppl, int8_ppl = lm.perplexity(lines), int8.perplexity(lines)
    assert abs(int8_ppl - fp32_ppl) <= 0.03 * fp32_ppl
    assert int8.generate(temperature=0) != ""


def test_unknown_precision(toy_model: Path) -> None:
    """A precision the folder has no graphs for is refused, listing the ones it has."""
    with pytest.raises(PocketLMError) as excinfo:
        LanguageModel(toy_model, precision="fp16")
    assert "fp16" in str(excinfo.value) and "fp32" in str(excinfo.value)
    assert "int8" in str(excinfo.value)


# -- broken folders -----------------------------------------------------------------------------

def test_missing_file(toy_model: Path, tmp_path: Path) -> None:
    """A model folder missing a listed graph is refused with a one-line ArtifactError."""
    folder = _broken_copy(toy_model, tmp_path)
    (folder / "step.onnx").unlink()
    with pytest.raises(ArtifactError) as excinfo:
        LanguageModel(folder)
    assert "step.onnx" in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert "pocketlm export" in str(excinfo.value)


def test_missing_folder(tmp_path: Path) -> None:
    """A path that does not exist is a one-line ArtifactError."""
    with pytest.raises(ArtifactError, match="no such folder"):
        LanguageModel(tmp_path / "nope")


def test_corrupted_graph(toy_model: Path, tmp_path: Path) -> None:
    """A graph with damaged bytes is refused: by its hash, or (verify=False) because
    onnxruntime cannot load it; either way a one-line ArtifactError naming the file."""
    folder = _broken_copy(toy_model, tmp_path)
    graph = folder / "score.onnx"
    data = bytearray(graph.read_bytes())
    data[:64] = b"\x07" * 64
    graph.write_bytes(bytes(data))
    for verify in (True, False):
        with pytest.raises(ArtifactError) as excinfo:
            LanguageModel(folder, verify=verify)
        message = str(excinfo.value)
        assert "score.onnx" in message and "\n" not in message


def test_corrupted_tokenizer(toy_model: Path, tmp_path: Path) -> None:
    """A damaged tokenizer.json is refused with a one-line ArtifactError (by hash, or with
    verify=False because it is not valid JSON)."""
    folder = _broken_copy(toy_model, tmp_path)
    flip_byte(folder / "tokenizer.json", 0)
    for verify in (True, False):
        with pytest.raises(ArtifactError) as excinfo:
            LanguageModel(folder, verify=verify)
        message = str(excinfo.value)
        assert "tokenizer.json" in message and "\n" not in message


def test_data_folder_is_not_a_model(toy_data: Path) -> None:
    """Passing a data folder names the expected kind."""
    with pytest.raises(ArtifactError, match="'model'"):
        LanguageModel(toy_data)


# -- no training stack --------------------------------------------------------------------------

_NO_TORCH = BLOCK_TRAINING_STACK + """
import pocketlm.runtime
from pocketlm.runtime import LanguageModel
lm = LanguageModel(sys.argv[1])
result = {
    "score": lm.score("the cat sees the ball ."),
    "rank": lm.rank(["a b", "the cat"])[0].sentence,
    "generate": lm.generate(seed=0),
    "int8": LanguageModel(sys.argv[1], precision="int8").score("the cat"),
    "attempts": attempts,
    "loaded": sorted(m for m in sys.modules
                     if m.split(".")[0] in ("torch", "datasets", "safetensors", "onnx")
                     and sys.modules[m] is not None),
}
print(json.dumps(result))
"""


def test_runtime_without_torch(toy_model: Path, lm: LanguageModel) -> None:
    """pocketlm.runtime imports, loads a model, scores, ranks and generates in a process where
    torch cannot be imported, and never even tries to import torch, datasets, safetensors or
    onnx."""
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, str(toy_model)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == [] and result["loaded"] == []
    assert result["score"] == pytest.approx(lm.score("the cat sees the ball ."), abs=1e-4)
    assert result["generate"] == lm.generate(seed=0)


_MODULES_AFTER = """
import json, sys
from pocketlm.runtime import LanguageModel

lm = LanguageModel(sys.argv[1])
lm.score_batch(["the cat", "a bird"])
lm.generate(max_words=5, seed=1)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "datasets"))))
"""


def test_torch_not_in_sys_modules(toy_model: Path) -> None:
    """In an ordinary process (torch installed), loading and scoring leaves torch and datasets
    out of sys.modules."""
    proc = subprocess.run([sys.executable, "-c", _MODULES_AFTER, str(toy_model)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


# -- detokenize ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tokens, text", [
    (["and", "god", "said", ",", "let", "there", "be", "light", "."],
     "and god said, let there be light."),
    ([], ""),
    (["hello"], "hello"),
    (["wait", "...", "what", "?", "!"], "wait... what?!"),
    (["he", "came", "(", "at", "last", ")", ";", "then", "left"],
     "he came (at last); then left"),
    (["a", "[", "b", "]", "{", "c", "}"], "a [b] {c}"),
    (["don", "'", "t", "stop"], "don't stop"),
    ([",", "leading"], ", leading"),
])
def test_detokenize(tokens: list[str], text: str) -> None:
    """Words are joined with spaces, closing punctuation attaches to the left, opening brackets
    and apostrophes attach to the right."""
    assert detokenize(tokens) == text


def test_generated_text_is_detokenized(lm: LanguageModel) -> None:
    """Generated text has no space before the final punctuation mark."""
    text = lm.generate(temperature=0)
    assert not text.endswith(" .") and not text.endswith(" !")
    assert text[-1] in ".!"
