"""The recurrent language model: embedding → dropout → RNN stack → dropout → linear decoder.

With ``tied=True`` the decoder reuses the embedding matrix (Press & Wolf, 2017); when the hidden
size differs from the embedding size a linear projection maps hidden → embedding first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pocketlm.runtime.artifact import PocketLMError

from .cells import State, get_cell


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a model; stored in every checkpoint so a checkpoint describes itself."""

    vocab_size: int
    cell: str = "lstm"
    layers: int = 2
    embedding_size: int = 200
    hidden_size: int = 200
    dropout: float = 0.2
    tied: bool = True

    def __post_init__(self) -> None:
        get_cell(self.cell)
        if min(self.vocab_size, self.layers, self.embedding_size, self.hidden_size) < 1:
            raise PocketLMError("vocab size, layers, embedding and hidden sizes must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise PocketLMError(f"dropout {self.dropout} must be in [0, 1)")


class RNNLM(nn.Module):
    """Word-level recurrent LM. ``forward(tokens [B, T], state) -> (logits [B, T, V], state)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.cell = get_cell(config.cell)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.drop = nn.Dropout(config.dropout)
        self.rnn = self.cell.build(config.embedding_size, config.hidden_size, config.layers,
                                   config.dropout)
        out_size = config.hidden_size
        self.projection: nn.Module | None = None
        if config.tied and config.hidden_size != config.embedding_size:
            self.projection = nn.Linear(config.hidden_size, config.embedding_size, bias=False)
            out_size = config.embedding_size
        self.decoder = nn.Linear(out_size, config.vocab_size)
        if config.tied:
            self.decoder.weight = self.embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not self.config.tied:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def init_state(self, batch: int, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> State:
        """Zero state: one ``[layers, batch, hidden]`` tensor per state name of the cell."""
        shape = (self.config.layers, batch, self.config.hidden_size)
        return tuple(torch.zeros(shape, device=device, dtype=dtype)
                     for _ in self.cell.state_names)

    def features(self, tokens: torch.Tensor, state: State | None = None
                 ) -> tuple[torch.Tensor, State]:
        """Top-layer outputs before the decoder: ``[B, T, E or H]`` and the new state."""
        x = self.drop(self.embedding(tokens))                     # (B, T, E)
        if state is None:
            out, new_state = self.rnn(x)                         # (B, T, H)
        else:
            out, new_state = self.rnn(x, self.cell.to_torch(state))
        out = self.drop(out)
        if self.projection is not None:
            out = self.projection(out)                           # (B, T, E)
        return out, self.cell.from_torch(new_state)

    def forward(self, tokens: torch.Tensor, state: State | None = None
                ) -> tuple[torch.Tensor, State]:
        out, new_state = self.features(tokens, state)
        batch, steps, size = out.shape
        # 2-D input so ONNX gets a Gemm that reads the (tied) weight as is, not a transposed copy
        logits = self.decoder(out.reshape(batch * steps, size))   # (B*T, V)
        return logits.reshape(batch, steps, -1), new_state       # (B, T, V)


def detach_state(state: State) -> State:
    """Cut the graph between BPTT windows while keeping the values (truncated BPTT)."""
    return tuple(s.detach() for s in state)
