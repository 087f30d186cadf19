"""The shared encoder and its heads: a language model's weights load into it and it computes
what the language model computed, the suffix table is factorised (or full with suffix_size 0)
and starts silent but trains, the backward stack reads each sentence reversed within its
length, padding never changes a sentence's result, and the poolings pool what they say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pocketlm.pipeline.checkpoint import load_checkpoint
from pocketlm.pipeline.encoder import (POOLINGS, SAVED_DEFAULTS, EncoderConfig, TaskModel,
                                       load_lm_weights, reverse_index)
from pocketlm.runtime.features import SUFFIX_BUCKETS
from pocketlm.runtime.artifact import EOS_ID, PocketLMError


def config(**fields: object) -> EncoderConfig:
    base = dict(vocab_size=40, labels=3, head="classify", embedding_size=8, hidden_size=6,
                dropout=0.0)
    return EncoderConfig(**{**base, **fields})  # type: ignore[arg-type]


def batch(lengths: list[int], steps: int, vocab: int = 40, seed: int = 0
          ) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    inside = torch.arange(steps).unsqueeze(0) < lens.unsqueeze(1)
    tokens = torch.randint(2, vocab, (len(lengths), steps), generator=gen) * inside
    shapes = torch.randint(1, 8, (len(lengths), steps), generator=gen) * inside
    suffixes = torch.randint(1, 4096, (len(lengths), steps), generator=gen) * inside
    return tokens, shapes, suffixes, lens


def test_reverse_index_reverses_within_each_length() -> None:
    assert reverse_index(torch.tensor([3, 1, 4]), 4).tolist() == [
        [2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]


def test_a_loaded_language_model_computes_its_own_features(toy_checkpoint: Path) -> None:
    lm, manifest = load_checkpoint(toy_checkpoint)
    m = manifest["model"]
    model = TaskModel(config(vocab_size=m["vocab_size"], cell=m["cell"], layers=m["layers"],
                             embedding_size=m["embedding_size"], hidden_size=m["hidden_size"],
                             head="tag")).eval()
    loaded = load_lm_weights(model, load_file(str(toy_checkpoint / "model.safetensors")),
                             backward=False, source="toy")
    assert "embedding.weight" in loaded and "rnn.weight_hh_l0" in loaded
    tokens, shapes, suffixes, lengths = batch([5, 5], 5, vocab=m["vocab_size"])
    with torch.no_grad():
        ours = model.encoder(tokens, shapes, suffixes, lengths)                 # (B, L, H)
        start = torch.full_like(tokens[:, :1], EOS_ID)
        theirs, _ = lm.rnn(lm.embedding(torch.cat([start, tokens], dim=1)))
    torch.testing.assert_close(ours, theirs[:, 1:])


def test_load_refuses_another_shape(toy_checkpoint: Path) -> None:
    model = TaskModel(config(vocab_size=10))
    with pytest.raises(PocketLMError, match="--embedding-size"):
        load_lm_weights(model, load_file(str(toy_checkpoint / "model.safetensors")),
                        backward=False, source="toy")
    with pytest.raises(PocketLMError, match="--bidirectional"):
        load_lm_weights(model, {}, backward=True, source="toy")


def test_the_backward_stack_reads_the_sentence_reversed() -> None:
    model = TaskModel(config(bidirectional=True, head="tag")).eval()
    tokens, shapes, suffixes, lengths = batch([4], 4)
    enc = model.encoder
    with torch.no_grad():
        out = enc(tokens, shapes, suffixes, lengths)                            # (1, 4, 12)
        assert enc.suffix_projection is not None
        x = (enc.embedding(tokens) + enc.shape_embedding(shapes)
             + enc.suffix_projection(enc.suffix_embedding(suffixes)))
        start = enc.embedding(torch.full_like(tokens[:, :1], EOS_ID))
        assert enc.rnn_backward is not None
        back, _ = enc.rnn_backward(torch.cat([start, torch.flip(x, dims=[1])], dim=1))
    # position t of the backward half: the backward cells after reading the sentence's end
    # down to piece t
    torch.testing.assert_close(out[0, :, 6:], torch.flip(back[0, 1:], dims=[0]))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_a_sentence(pooling: str, bidirectional: bool) -> None:
    model = TaskModel(config(pooling=pooling, bidirectional=bidirectional)).eval()
    tokens, shapes, suffixes, lengths = batch([3, 7], 7)
    with torch.no_grad():
        together = model(tokens, shapes, suffixes, lengths)
        alone = model(tokens[:1, :3], shapes[:1, :3], suffixes[:1, :3], lengths[:1])
    torch.testing.assert_close(together[:1], alone)
    assert torch.allclose(together.exp().sum(-1), torch.ones(2))


def test_mean_pooling_is_the_mean_of_the_pieces() -> None:
    model = TaskModel(config(pooling="mean")).eval()
    tokens, shapes, suffixes, lengths = batch([2, 5], 5)
    with torch.no_grad():
        out = model.encoder(tokens, shapes, suffixes, lengths)
        pooled = model.head.pool(out, lengths)
    torch.testing.assert_close(pooled[0], out[0, :2].mean(0))
    torch.testing.assert_close(pooled[1], out[1].mean(0))


def test_tag_rows_beyond_the_length_are_zero() -> None:
    model = TaskModel(config(head="tag")).eval()
    with torch.no_grad():
        logp = model(*batch([2, 5], 5))
    assert logp.shape == (2, 5, 3) and bool((logp[0, 2:] == 0).all())


def test_a_language_model_starts_the_backward_cells(toy_checkpoint: Path) -> None:
    lm = load_file(str(toy_checkpoint / "model.safetensors"))
    model = TaskModel(config(vocab_size=lm["embedding.weight"].shape[0], embedding_size=24,
                             hidden_size=24, bidirectional=True))
    before = model.encoder.embedding.weight.detach().clone()
    loaded = load_lm_weights(model, lm, backward=True, source="toy")
    assert "embedding.weight" not in loaded          # the forward source owns the embedding
    assert model.encoder.rnn_backward is not None
    torch.testing.assert_close(model.encoder.rnn_backward.weight_hh_l0.detach(),
                               lm["rnn.weight_hh_l0"])
    assert torch.equal(model.encoder.embedding.weight, before)


def test_the_suffix_table_is_factorised_and_starts_silent() -> None:
    model = TaskModel(config(embedding_size=16, suffix_size=4, head="tag"))
    enc = model.encoder
    assert enc.suffix_embedding.weight.shape == (SUFFIX_BUCKETS, 4)
    assert enc.suffix_projection is not None and enc.suffix_projection.bias is None
    assert enc.suffix_projection.weight.shape == (16, 4)
    tokens, shapes, suffixes, lengths = batch([5, 3], 5)
    other = torch.where(suffixes > 0, suffixes % 7 + 1, suffixes)
    with torch.no_grad():    # a fresh encoder ignores the suffixes: the language model's input
        torch.testing.assert_close(model(tokens, shapes, suffixes, lengths),
                                   model(tokens, shapes, other, lengths), rtol=0, atol=0)
    model.train()
    model(tokens, shapes, suffixes, lengths)[:, :, 1].sum().backward()
    assert enc.suffix_embedding.weight.grad is not None
    assert enc.suffix_embedding.weight.grad.abs().sum() > 0      # and yet it learns


def test_suffix_size_zero_is_the_full_table_of_older_checkpoints() -> None:
    model = TaskModel(config(embedding_size=16, suffix_size=0))
    assert model.encoder.suffix_embedding.weight.shape == (SUFFIX_BUCKETS, 16)
    assert model.encoder.suffix_projection is None
    assert not any("suffix_projection" in name for name in model.state_dict())
    old = {k: v for k, v in vars(config()).items() if k != "suffix_size"}  # no such field then
    assert EncoderConfig(**{**SAVED_DEFAULTS, **old}).suffix_size == 0
