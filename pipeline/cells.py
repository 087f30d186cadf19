"""The cell registry: the one place that knows how each recurrent cell is built and what its state
looks like. Everything else (model, training, export, runtime manifest, the command line's
choices) asks this registry, so adding a cell is one entry (from any file:
``CELLS["name"] = Cell(...)``). ``module(input_size, hidden_size, layers, batch_first=True,
dropout=...)`` must behave as ``nn.LSTM`` does: ``(x [B, T, E], state) -> (out [B, T, H],
state)``, the state one tensor or a tuple of them, each ``[layers, B, H]``.

A state is always a tuple of tensors shaped ``[layers, batch, hidden]``: ``(h, c)`` for LSTM,
``(h,)`` for GRU and the vanilla RNNs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pocketlm.runtime.artifact import PocketLMError

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Cell:
    """How to build one kind of recurrent layer and how its state is laid out."""

    name: str
    module: type[nn.Module]
    state_names: tuple[str, ...]
    nonlinearity: str | None = None

    def build(self, input_size: int, hidden_size: int, layers: int, dropout: float) -> nn.Module:
        """A batch-first stack of ``layers`` cells (dropout between layers only)."""
        kwargs: dict[str, Any] = {"batch_first": True,
                                  "dropout": dropout if layers > 1 else 0.0}
        if self.nonlinearity:
            kwargs["nonlinearity"] = self.nonlinearity
        return self.module(input_size, hidden_size, layers, **kwargs)

    def to_torch(self, state: State) -> Any:
        """The state as the torch module takes it."""
        return state if len(self.state_names) > 1 else state[0]

    def from_torch(self, state: Any) -> State:
        """The torch module's returned state as a tuple."""
        return tuple(state) if isinstance(state, tuple) else (state,)


CELLS: dict[str, Cell] = {
    "lstm": Cell("lstm", nn.LSTM, ("h", "c")),
    "gru": Cell("gru", nn.GRU, ("h",)),
    "rnn_tanh": Cell("rnn_tanh", nn.RNN, ("h",), "tanh"),
    "rnn_relu": Cell("rnn_relu", nn.RNN, ("h",), "relu"),
}


def cell_names() -> list[str]:
    """The registered cells' names (a registration made later shows up too)."""
    return list(CELLS)


def get_cell(name: str) -> Cell:
    """The registered cell called ``name``; a clear error lists the others."""
    try:
        return CELLS[name]
    except KeyError:
        raise PocketLMError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}") from None
