"""The encoder shared by the labelled tasks, and their heads::

    tokens, shapes, suffixes [B, L] (0 beyond each length)
      → embedding(tokens) + shape_embedding(shapes)
        + suffix_projection(suffix_embedding(suffixes))                          [B, L, E]
      → <eos> column prepended (the zero state then <eos>, as a language model starts a line)
      → forward cells                         → [B, L, H]
      → backward cells on each sentence reversed within its length, re-reversed → [B, L, H]
        (``bidirectional`` only; concatenated: [B, L, 2H])
      → head: classify  pooling (last | mean | max | attention) → dropout → linear → [B, C]
              tag       dropout → linear per piece                               → [B, L, T]
      → log-softmax

The word embedding and the forward cells are named as in :class:`~pocketlm.pipeline.model.RNNLM`
(``embedding.weight``, ``rnn.*``), so a language model's checkpoint loads into them
(:func:`load_lm_weights`); the shape and suffix tables start at zero, so such an encoder first
computes exactly what the language model computed. The backward cells (``rnn_backward.*``) load
from a language model trained on reversed lines.

The suffix table is factorised: ``SUFFIX_BUCKETS × suffix_size`` (8 by default), then a linear
map without bias to the embedding size (``suffix_projection``, orthogonal at the start): 33,792
int8 bytes instead of 524,288 for a 128-wide embedding, with the same tagging F1 on the KJV
names. ``suffix_size`` 0 is the full ``SUFFIX_BUCKETS × embedding_size`` table without
projection, what checkpoints written before the option hold (:data:`SAVED_DEFAULTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pocketlm.runtime.artifact import EOS_ID, PocketLMError
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS

from .cells import cell_names, get_cell
from .model import locked_dropout
from pocketlm.runtime.options import option
from .options import check_fields

_FRACTION = {"minimum": 0.0, "maximum": 1.0, "max_open": True}
POOLINGS = ("last", "mean", "max", "attention")
#: What a checkpoint's missing field meant when it was written (before the field existed).
SAVED_DEFAULTS: dict[str, object] = {"suffix_size": 0}
#: The encoder's modules for the word features, which start untrained (never loaded, never frozen).
FEATURE_WEIGHTS = ("shape_embedding", "suffix_embedding", "suffix_projection")


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of a task model; stored in its checkpoint. ``labels`` is the number of classes
    (classify) or tags (tag); ``head`` is the task's head (:data:`HEADS`)."""

    vocab_size: int = 0
    labels: int = 0
    head: str = "classify"
    cell: str = field(default="lstm", metadata=option("Recurrent cell", choices=cell_names))
    layers: int = field(default=1, metadata=option("Stacked layers", minimum=1))
    embedding_size: int = field(default=128, metadata=option("Word embedding size", minimum=1))
    hidden_size: int = field(default=208, metadata=option("Hidden state size", minimum=1))
    dropout: float = field(default=0.25, metadata=option("Dropout", **_FRACTION))
    bidirectional: bool = field(default=False, metadata=option(
        "Add a second stack of cells reading each sentence backwards",
        flag="--bidirectional/--forward-only"))
    pooling: str = field(default="max", metadata=option(
        "How a classifier pools the pieces' outputs into one vector", choices=POOLINGS))
    suffix_size: int = field(default=8, metadata=option(
        "Width of the hashed-suffix table, mapped linearly to the embedding size (0: a full "
        "table as wide as the embedding)", minimum=0))

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def output_size(self) -> int:
        """Width of the encoder's per-piece outputs."""
        return self.hidden_size * (2 if self.bidirectional else 1)


def reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, L]`` positions that reverse each row within its length and keep the padding:
    ``t → length-1-t`` for ``t < length``, ``t → t`` beyond."""
    positions = torch.arange(steps, device=lengths.device).unsqueeze(0)          # (1, L)
    flipped = lengths.unsqueeze(1) - 1 - positions                               # (B, L)
    return torch.where(positions < lengths.unsqueeze(1), flipped, positions)


def valid_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, L]`` True at the positions inside each length."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class Encoder(nn.Module):
    """Embeddings (word + shape + suffix, added) and one or two stacks of cells."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        cell = get_cell(config.cell)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        self.shape_embedding = nn.Embedding(len(SHAPES), config.embedding_size)
        self.suffix_embedding = nn.Embedding(SUFFIX_BUCKETS,
                                             config.suffix_size or config.embedding_size)
        nn.init.zeros_(self.shape_embedding.weight)
        nn.init.zeros_(self.suffix_embedding.weight)
        self.suffix_projection = (nn.Linear(config.suffix_size, config.embedding_size, bias=False)
                                  if config.suffix_size else None)
        if self.suffix_projection is not None:
            # orthogonal, scaled so that a step moves a suffix's embedding as far as a step
            # of a full table would (each of S coordinates, spread over E)
            nn.init.orthogonal_(self.suffix_projection.weight,
                                gain=(config.embedding_size / config.suffix_size) ** 0.5)
        self.rnn = cell.build(config.embedding_size, config.hidden_size, config.layers,
                              config.dropout)
        self.rnn_backward = (cell.build(config.embedding_size, config.hidden_size, config.layers,
                                        config.dropout) if config.bidirectional else None)

    def _run(self, rnn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``x [B, L, E]`` after an ``<eos>`` column → outputs at the L real positions."""
        start = self.embedding(torch.full_like(x[:, :1, 0], EOS_ID, dtype=torch.long))
        out, _ = rnn(torch.cat([start, x], dim=1))                               # (B, 1+L, H)
        return out[:, 1:]                                                        # (B, L, H)

    def forward(self, tokens: torch.Tensor, shapes: torch.Tensor, suffixes: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` ids (and ``lengths [B]``) → per-piece outputs ``[B, L, H or 2H]``."""
        p = self.config.dropout
        suffix = self.suffix_embedding(suffixes)                                 # (B, L, S)
        if self.suffix_projection is not None:
            suffix = self.suffix_projection(suffix)                              # (B, L, E)
        x = self.embedding(tokens) + self.shape_embedding(shapes) + suffix      # (B, L, E)
        x = locked_dropout(x, p, self.training)
        out = self._run(self.rnn, x)                                             # (B, L, H)
        if self.rnn_backward is not None:
            index = reverse_index(lengths, tokens.shape[1]).unsqueeze(2)         # (B, L, 1)
            reversed_x = x.gather(1, index.expand(-1, -1, x.shape[2]))
            back = self._run(self.rnn_backward, reversed_x)                      # (B, L, H)
            back = back.gather(1, index.expand(-1, -1, back.shape[2]))
            out = torch.cat([out, back], dim=2)                                  # (B, L, 2H)
        return locked_dropout(out, p, self.training)


class ClassifyHead(nn.Module):
    """Pool the pieces' outputs, then dropout and a linear layer: ``[B, L, D] → [B, C]``."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        size = config.output_size
        self.attention = nn.Linear(size, 1) if config.pooling == "attention" else None
        self.linear = nn.Linear(size, config.labels)

    def pool(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        cfg, steps = self.config, out.shape[1]
        mask = valid_mask(lengths, steps).unsqueeze(2)                           # (B, L, 1)
        if cfg.pooling == "last":
            last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[2])
            pooled = out.gather(1, last).squeeze(1)                              # (B, D)
            if cfg.bidirectional:   # the backward stack ends at the first piece
                pooled = torch.cat([pooled[:, :cfg.hidden_size],
                                    out[:, 0, cfg.hidden_size:]], dim=1)
            return pooled
        if cfg.pooling == "mean":
            total = (out * mask).sum(dim=1)
            return total / lengths.clamp(min=1).unsqueeze(1).to(out.dtype)       # (B, D)
        if cfg.pooling == "max":
            return out.masked_fill(~mask, -1e4).max(dim=1).values                 # (B, D)
        assert self.attention is not None
        scores = self.attention(out).masked_fill(~mask, -1e4)                    # (B, L, 1)
        return (torch.softmax(scores, dim=1) * out).sum(dim=1)                   # (B, D)

    def forward(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = F.dropout(self.pool(out, lengths), self.config.dropout, self.training)
        return F.log_softmax(self.linear(pooled).float(), dim=-1)                # (B, C)


class TagHead(nn.Module):
    """A linear layer per piece: ``[B, L, D] → [B, L, T]``, 0 beyond each length."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(config.output_size, config.labels)

    def forward(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(self.linear(out).float(), dim=-1)                   # (B, L, T)
        inside = valid_mask(lengths, out.shape[1]).unsqueeze(2)                  # (B, L, 1)
        return torch.where(inside, logp, torch.zeros_like(logp))


#: The heads a task can put on the encoder (a task names one; adding one is an entry here,
#: from any file).
HEADS: dict[str, type[nn.Module]] = {"classify": ClassifyHead, "tag": TagHead}


class TaskModel(nn.Module):
    """Encoder and head: ``(tokens, shapes, suffixes, lengths) → log-probabilities``, what the
    exported graph computes."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        if config.vocab_size < 1 or config.labels < 1:
            raise PocketLMError(f"a task model needs a vocabulary and labels (got vocab_size "
                                f"{config.vocab_size}, labels {config.labels})")
        if config.head not in HEADS:
            raise PocketLMError(f"unknown head {config.head!r}; choose one of "
                                f"{', '.join(HEADS)}")
        self.config = config
        self.encoder = Encoder(config)
        self.head = HEADS[config.head](config)

    def forward(self, tokens: torch.Tensor, shapes: torch.Tensor, suffixes: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(tokens, shapes, suffixes, lengths), lengths)


def recurrent_layer(name: str) -> int | None:
    """The layer index of a recurrent parameter name (``rnn.weight_hh_l1`` → 1), else None."""
    base = name.rsplit(".", 1)[-1]
    if ".rnn" not in f".{name}" or "_l" not in base:
        return None
    digits = base.rsplit("_l", 1)[1].split("_")[0]
    return int(digits) if digits.isdigit() else None


def load_lm_weights(model: TaskModel, tensors: dict[str, torch.Tensor], backward: bool,
                    source: str) -> list[str]:
    """Copy a language model's embedding and recurrent weights (its ``embedding.weight`` and
    ``rnn.*``) into the encoder: into the forward stack, or with ``backward`` into the backward
    one (the embedding then only when there is no forward source). Returns the names loaded;
    refuses shapes that differ, naming them and the fix."""
    encoder, loaded = model.encoder, []
    target = encoder.rnn_backward if backward else encoder.rnn
    if target is None:
        raise PocketLMError("--init-backward-from needs --bidirectional")
    own = {f"rnn.{n}": p for n, p in target.named_parameters()}
    if not backward:
        own["embedding.weight"] = encoder.embedding.weight
    for name, param in own.items():
        if name not in tensors:
            raise PocketLMError(f"{source}: no {name} in the language model's weights (another "
                                f"cell or number of layers?); train the task model with the "
                                f"checkpoint's --cell and --layers")
        value = tensors[name]
        if tuple(value.shape) != tuple(param.shape):
            raise PocketLMError(f"{source}: {name} is {list(value.shape)}, the task model's "
                                f"{list(param.shape)}; give the checkpoint's --embedding-size, "
                                f"--hidden-size and --layers")
        with torch.no_grad():
            param.copy_(value)
        loaded.append(name)
    return loaded
