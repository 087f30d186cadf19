"""The recurrent language model and its training-only regularisation::

    tokens [B, T] → embedding (word dropout) → locked dropout → RNN stack → locked dropout
                  → [projection H → E] → features [B, T, D] → output layer (pipeline/outputs.py)

With ``tied=True`` the output layer reuses the embedding matrix (Press & Wolf, 2017): all of it
(``full``), or the head words' rows plus, with ``tied_tails``, the tail words' rows through a
learned down-mapping (``adaptive``); when the hidden size differs from the embedding size a
bias-free projection maps hidden → embedding first.

Regularisation (all off in eval mode, so export and the runtime see the plain model):

* ``embed_dropout``: drop whole words from the embedding table (one mask per batch, rows
  rescaled), Gal & Ghahramani (2016) / Merity et al. (2018);
* ``input_dropout`` and ``dropout``: locked (variational) dropout, one mask per sequence shared
  over time, on the embeddings and on the top layer's outputs; ``dropout`` is also the stack's own
  dropout between layers;
* ``weight_dropout``: DropConnect on the hidden-to-hidden matrices (Wan et al., 2013; the
  AWD-LSTM's weight drop): each window runs the stack with a dropped copy of ``weight_hh_l*``;
* activation regularisation is a training-loss term (see ``TrainConfig.ar``), computed on the
  features this module returns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pocketlm.runtime.artifact import PocketLMError

from .cells import State, cell_names, get_cell
from pocketlm.runtime.options import option
from .options import check_fields
from .outputs import get_output, output_names

_FRACTION = {"minimum": 0.0, "maximum": 1.0, "max_open": True}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a model; stored in every checkpoint so a checkpoint describes itself.

    Each field but ``vocab_size`` is also a ``pocketlm train`` option (help and limits in its
    metadata, see :mod:`pocketlm.pipeline.options`). ``vocab_size`` is 0 while the data folder
    is not known yet (inside a :class:`~pocketlm.pipeline.config.TrainConfig`); the checks that
    need it run once it is set. ``input_dropout=None`` means "as ``dropout``"."""

    vocab_size: int = 0
    cell: str = field(default="lstm", metadata=option("Recurrent cell", choices=cell_names))
    layers: int = field(default=2, metadata=option("Stacked layers", minimum=1))
    embedding_size: int = field(default=200, metadata=option("Word embedding size", minimum=1))
    hidden_size: int = field(default=200, metadata=option("Hidden state size", minimum=1))
    dropout: float = field(default=0.2, metadata=option(
        "Dropout (locked, on the top layer's outputs, and between layers)", **_FRACTION))
    tied: bool = field(default=True, metadata=option(
        "Share embedding and decoder weights", flag="--tied/--untied"))
    # output layer (pipeline/outputs.py) and training-only regularisation
    output: str = field(default="full", metadata=option(
        "Output layer (see pipeline/outputs.py): full softmax, adaptive clusters, ...",
        choices=output_names))
    cutoffs: tuple[int, ...] = field(default=(), metadata=option(
        "Adaptive cluster boundaries (word ids, increasing)", metavar="C0,C1,..."))
    div_value: float = field(default=4.0, metadata=option(
        "Adaptive tail k projects to hidden / div^k", minimum=1))
    input_dropout: float | None = field(default=None, metadata=option(
        "Locked dropout on the embeddings (default: as --dropout)", **_FRACTION))
    embed_dropout: float = field(default=0.0, metadata=option(
        "Fraction of words dropped from the embedding table", **_FRACTION))
    weight_dropout: float = field(default=0.0, metadata=option(
        "DropConnect on hidden-to-hidden weights", **_FRACTION))
    # tied adaptive tails (pipeline/outputs.py, TiedTail); checkpoints from before load as False
    tied_tails: bool = field(default=True, metadata=option(
        "Tie adaptive tail words to their embeddings", flag="--tied-tails/--untied-tails"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoffs", tuple(int(c) for c in self.cutoffs))
        if self.vocab_size < 0:
            raise PocketLMError(f"vocab size {self.vocab_size} must be >= 1 (0: not known yet)")
        check_fields(self)
        get_output(self.output).check(self)

    @property
    def locked_input_dropout(self) -> float:
        """The embeddings' locked dropout (``input_dropout``, else ``dropout``)."""
        return self.dropout if self.input_dropout is None else self.input_dropout


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with one mask per sequence shared over time: ``x [B, T, F]``, mask ``[B, 1, F]``."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(embedding: nn.Embedding, tokens: torch.Tensor, p: float,
                      training: bool) -> torch.Tensor:
    """Look up ``tokens`` with whole rows of the table dropped (one mask per call, rescaled)."""
    if not training or p == 0.0:
        return embedding(tokens)
    weight = embedding.weight
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
    return F.embedding(tokens, weight * mask)


class RNNLM(nn.Module):
    """Word-level recurrent LM. ``forward(tokens [B, T], state) -> (log-probs [B, T, V], state)``;
    training uses ``features`` then ``loss`` and never builds the ``[B, T, V]`` tensor."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise PocketLMError("the model config has no vocabulary size (0: not known yet); "
                                "build it with TrainConfig.model_config(vocab_size)")
        self.config = config
        self.cell = get_cell(config.cell)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.rnn = self.cell.build(config.embedding_size, config.hidden_size, config.layers,
                                   config.dropout)
        out_size = config.hidden_size
        self.projection: nn.Module | None = None
        if config.tied and config.hidden_size != config.embedding_size:
            self.projection = nn.Linear(config.hidden_size, config.embedding_size, bias=False)
            out_size = config.embedding_size
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        self.output = get_output(config.output)
        self.decoder = self.output.build(out_size, config.vocab_size,
                                         self.embedding if config.tied else None, config)

    def init_state(self, batch: int, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> State:
        """Zero state: one ``[layers, batch, hidden]`` tensor per state name of the cell."""
        shape = (self.config.layers, batch, self.config.hidden_size)
        return tuple(torch.zeros(shape, device=device, dtype=dtype)
                     for _ in self.cell.state_names)

    def features(self, tokens: torch.Tensor, state: State | None = None
                 ) -> tuple[torch.Tensor, State]:
        """Top-layer outputs before the output layer: ``[B, T, E or H]`` and the new state."""
        cfg = self.config
        x = embedding_dropout(self.embedding, tokens, cfg.embed_dropout, self.training)
        x = locked_dropout(x, cfg.locked_input_dropout, self.training)     # (B, T, E)
        args = (x,) if state is None else (x, self.cell.to_torch(state))
        if self.training and cfg.weight_dropout > 0:
            out, new_state = self._weight_dropped(args)          # (B, T, H)
        else:
            out, new_state = self.rnn(*args)                     # (B, T, H)
        out = locked_dropout(out, cfg.dropout, self.training)
        if self.projection is not None:
            out = self.projection(out)                           # (B, T, E)
        return out, self.cell.from_torch(new_state)

    def _weight_dropped(self, args: tuple) -> tuple[torch.Tensor, object]:
        """The stack run with DropConnect on its hidden-to-hidden matrices (training only)."""
        p = self.config.weight_dropout
        dropped = {name: F.dropout(w, p, training=True)
                   for name, w in self.rnn.named_parameters() if name.startswith("weight_hh")}
        with warnings.catch_warnings():  # cuDNN: "weights are not part of single contiguous chunk"
            warnings.simplefilter("ignore", UserWarning)
            return torch.func.functional_call(self.rnn, dropped, args, strict=False)

    def loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood (nats) of ``targets [B, T]`` given ``features
        [B, T, D]``."""
        flat = features.reshape(-1, features.shape[-1])          # (B*T, D)
        return self.decoder.loss(flat, targets.reshape(-1)).mean()

    def target_logprob(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Exact ln P(targets) ``[B, T]``, without the ``[B, T, V]`` distribution."""
        flat = features.reshape(-1, features.shape[-1])          # (B*T, D)
        return self.decoder.target_logprob(flat, targets.reshape(-1)).reshape(targets.shape)

    def forward(self, tokens: torch.Tensor, state: State | None = None
                ) -> tuple[torch.Tensor, State]:
        out, new_state = self.features(tokens, state)
        batch, steps, size = out.shape
        # 2-D input so ONNX gets a Gemm that reads the (tied) weight as is, not a transposed copy
        logprobs = self.decoder.log_probs(out.reshape(batch * steps, size))   # (B*T, V)
        return logprobs.reshape(batch, steps, -1), new_state                 # (B, T, V)


def detach_state(state: State) -> State:
    """Cut the graph between BPTT windows while keeping the values (truncated BPTT)."""
    return tuple(s.detach() for s in state)
