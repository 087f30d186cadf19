"""pipeline/cells.py and pipeline/model.py: the cell registry and the recurrent LM's shapes,
state layout, weight tying and state carrying. Small random models only; no training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pocketlm.pipeline.cells import CELLS, get_cell
from pocketlm.pipeline.model import RNNLM, ModelConfig, detach_state
from pocketlm.runtime.artifact import PocketLMError

V, B, T = 37, 3, 10


def make(cell: str, layers: int = 2, embedding: int = 16, hidden: int = 16, tied: bool = True,
         dropout: float = 0.3) -> RNNLM:
    torch.manual_seed(0)
    return RNNLM(ModelConfig(vocab_size=V, cell=cell, layers=layers, embedding_size=embedding,
                             hidden_size=hidden, dropout=dropout, tied=tied))


def tokens(batch: int = B, steps: int = T) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, V, (batch, steps), generator=generator)


def test_registry_names() -> None:
    """The registry holds the four cells, each under its own name."""
    assert set(CELLS) == {"lstm", "gru", "rnn_tanh", "rnn_relu"}
    for name, cell in CELLS.items():
        assert cell.name == name
        assert get_cell(name) is cell


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_builds_a_batch_first_stack(name: str) -> None:
    """Each cell builds a batch-first torch stack with the layers and sizes asked for, and
    dropout only between layers."""
    cell = get_cell(name)
    rnn = cell.build(8, 12, 3, 0.4)
    assert isinstance(rnn, cell.module)
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers) == (8, 12, 3)
    assert rnn.batch_first
    assert rnn.dropout == 0.4
    assert cell.build(8, 12, 1, 0.4).dropout == 0.0
    if cell.nonlinearity:
        assert rnn.nonlinearity == cell.nonlinearity


@pytest.mark.parametrize("name", sorted(CELLS))
def test_forward_shapes_and_state(name: str) -> None:
    """forward gives logits [B, T, V] and a state tuple of [layers, B, H] tensors: (h, c) for
    LSTM, (h,) for the others; init_state has the same layout, all zeros."""
    model = make(name, layers=2, embedding=16, hidden=20)
    logits, state = model(tokens())
    assert logits.shape == (B, T, V)
    expected = 2 if name == "lstm" else 1
    assert isinstance(state, tuple) and len(state) == expected
    assert len(model.cell.state_names) == expected
    for s in state:
        assert s.shape == (2, B, 20)
    zero = model.init_state(B)
    assert isinstance(zero, tuple) and len(zero) == expected
    for z in zero:
        assert z.shape == (2, B, 20) and not z.any()
    model.eval()  # no state means the zero state
    assert torch.equal(model(tokens())[0], model(tokens(), zero)[0])


@pytest.mark.parametrize("name", sorted(CELLS))
def test_tied_weights_share_storage(name: str) -> None:
    """With tied=True the decoder weight is the embedding matrix itself, so one update changes
    both; with equal sizes there is no projection."""
    model = make(name, embedding=16, hidden=16, tied=True)
    assert model.projection is None
    assert model.decoder.weight is model.embedding.weight
    assert model.decoder.weight.data_ptr() == model.embedding.weight.data_ptr()
    with torch.no_grad():
        model.embedding.weight[3, 0] = 42.0
    assert model.decoder.weight[3, 0].item() == 42.0
    names = [n for n, _ in model.named_parameters()]
    assert "decoder.weight" not in names  # counted once


def test_tied_with_projection() -> None:
    """Tied with hidden != embedding adds a bias-free hidden -> embedding projection, still
    sharing the embedding with the decoder."""
    model = make("gru", embedding=12, hidden=20, tied=True)
    assert isinstance(model.projection, nn.Linear)
    assert model.projection.weight.shape == (12, 20)
    assert model.projection.bias is None
    assert model.decoder.weight.data_ptr() == model.embedding.weight.data_ptr()
    features, _ = model.features(tokens())
    assert features.shape == (B, T, 12)
    assert model(tokens())[0].shape == (B, T, V)


def test_untied_has_its_own_decoder() -> None:
    """Untied, the decoder has its own weight [V, H] and there is no projection."""
    model = make("lstm", embedding=12, hidden=20, tied=False)
    assert model.projection is None
    assert model.decoder.weight.shape == (V, 20)
    assert model.decoder.weight.data_ptr() != model.embedding.weight.data_ptr()
    assert model(tokens())[0].shape == (B, T, V)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_state_carry_equals_one_pass(name: str) -> None:
    """In eval mode, two half-sequences with the state carried give the logits and final state
    of one pass over the whole sequence (dropout is on, so eval mode matters)."""
    model = make(name, layers=2, dropout=0.5).eval()
    x = tokens(steps=12)
    with torch.no_grad():
        full, full_state = model(x)
        first, state = model(x[:, :5])
        second, state = model(x[:, 5:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], dim=1), full, rtol=1e-5, atol=1e-6)
    for a, b in zip(state, full_state):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a fresh zero state for the second half would not give the same answer
    with torch.no_grad():
        cold, _ = model(x[:, 5:])
    assert not torch.allclose(cold, full[:, 5:], atol=1e-4)


def test_detach_state_keeps_values() -> None:
    """detach_state cuts the graph but keeps the values."""
    model = make("lstm")
    _, state = model(tokens())
    assert all(s.requires_grad for s in state)
    detached = detach_state(state)
    assert all(not s.requires_grad for s in detached)
    assert all(torch.equal(a, b) for a, b in zip(state, detached))


def test_unknown_cell_lists_the_names() -> None:
    """An unknown cell name is refused, listing the registered cells."""
    for call in (lambda: get_cell("transformer"),
                 lambda: ModelConfig(vocab_size=10, cell="transformer")):
        with pytest.raises(PocketLMError) as info:
            call()
        message = str(info.value)
        assert "'transformer'" in message
        for name in CELLS:
            assert name in message


@pytest.mark.parametrize("kwargs", [{"vocab_size": -1}, {"layers": 0}, {"hidden_size": 0},
                                    {"embedding_size": 0}, {"dropout": 1.0},
                                    {"dropout": -0.1}])
def test_model_config_validation(kwargs: dict[str, float]) -> None:
    """Sizes below 1 and dropout outside [0, 1) are refused."""
    with pytest.raises(PocketLMError):
        ModelConfig(**{"vocab_size": 10, **kwargs})  # type: ignore[arg-type]


def test_model_needs_a_vocabulary_size() -> None:
    """A config without a vocabulary size (0: not known yet, as a training config holds it)
    builds no model."""
    with pytest.raises(PocketLMError, match="vocabulary size"):
        RNNLM(ModelConfig())
