"""runtime/sampling.py: SplitMix64 reproduces the reference generator, ``pick`` never picks an
impossible or banned token and follows the distribution, and generation with a seed is the
same whatever the number of samples drawn with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketlm.runtime import UNK_ID, LanguageModel, detokenize
from pocketlm.runtime.artifact import InputError
from pocketlm.runtime.sampling import SplitMix64, generators, pick


def test_reference_outputs() -> None:
    """The first outputs of Vigna's splitmix64.c for two seeds."""
    g = SplitMix64(1234567)
    assert [g.next() for _ in range(3)] == [6457827717110365317, 3203168211198807973,
                                            9817491932198370423]
    g = SplitMix64(1477776061723855037)
    assert [g.next() for _ in range(3)] == [1985237415132408290, 2979275885539914483,
                                            13511426838097143398]


def test_uniforms_and_streams() -> None:
    g = SplitMix64.for_sample(7)
    draws = [g.random() for _ in range(5000)]
    assert all(0.0 <= u < 1.0 for u in draws) and 0.45 < np.mean(draws) < 0.55
    assert SplitMix64.for_sample(7).random() == draws[0]
    assert SplitMix64.for_sample(7, 1).random() != draws[0]
    assert SplitMix64.for_sample(-1).random() == SplitMix64.for_sample(2**64 - 1).random()
    assert [r.state for r in generators(3, 2)] == [SplitMix64.for_sample(3, i).state
                                                    for i in range(2)]
    with pytest.raises(InputError):
        SplitMix64.for_sample(1.5)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(probs=st.lists(st.sampled_from([0.0, 0.0, 1e-30, 1e-6, 0.3, 1.0, 7.0]), min_size=2,
                      max_size=300).filter(lambda row: any(row[1:])),
       seed=st.integers(0, 2**64 - 1), temperature=st.sampled_from([0.5, 1.0, 3.0]),
       top_k=st.integers(0, 5), top_p=st.sampled_from([1e-9, 0.5, 0.99, 1.0]))
def test_pick_only_possible_tokens(probs: list[float], seed: int, temperature: float,
                                   top_k: int, top_p: float) -> None:
    """Never a token of probability 0, never the banned one, whatever the settings."""
    with np.errstate(divide="ignore"):
        row = np.log(np.asarray(probs) / sum(probs)).astype(np.float32)
    rng = SplitMix64.for_sample(seed)
    for _ in range(5):
        token = pick(row, rng, temperature, top_k, top_p, banned=0)
        assert token != 0 and probs[token] > 0


def test_pick_follows_the_distribution(toy_model: Path) -> None:
    """Sampled first words follow the model's distribution (a loose frequency check)."""
    lm = LanguageModel(toy_model)
    logprobs = lm.begin().logprobs[0]
    probs = np.exp(logprobs.astype(np.float64))
    probs[UNK_ID] = 0
    probs /= probs.sum()
    rng = SplitMix64.for_sample(0)
    picked = [pick(logprobs, rng, banned=UNK_ID) for _ in range(4000)]
    freq = np.bincount(picked, minlength=lm.vocab_size) / len(picked)
    assert np.abs(freq - probs).max() < 0.03


def test_samples_do_not_depend_on_their_number(toy_model: Path) -> None:
    """Sample i of a seed is the same text however many samples are drawn, and the first one
    is what generate and stream give for that seed."""
    lm = LanguageModel(toy_model)
    many = lm.generate("the cat", seed=11, num_samples=5, temperature=1.5)
    assert lm.generate("the cat", seed=11, num_samples=2, temperature=1.5) == many[:2]
    assert lm.generate("the cat", seed=11, temperature=1.5) == many[0]
    assert detokenize(list(lm.stream("the cat", seed=11, temperature=1.5))) == many[0]
