"""Seeded sampling that gives the same words in every pocketlm runtime (Python and JavaScript).

The generator is SplitMix64 (Steele, Lea and Flood 2014, with the constants of Vigna's reference
code): 64-bit integer arithmetic, so any language reproduces it bit for bit. Sample ``i`` of a
seed draws from a generator whose state starts at (the first SplitMix64 output for ``seed``) +
``i``, so a sample's words do not depend on how many samples are drawn with it; each draw is
``(next() >> 11) * 2**-53``, uniform in [0, 1).

One token from a row of float32 log-probabilities, all in float64 and in this order:

1. ``z = logprobs`` (exact widening); the ``banned`` id (``<unk>`` unless ``allow_unk``) is -inf
2. temperature 0: the first index of the largest ``z``, no draw
3. ``z = z / temperature``
4. ``0 < top_k < vocab``: drop every ``z`` below the ``top_k``-th largest (ties at it are kept)
5. ``w = exp(z - max z)``, 0 where dropped
6. ``top_p < 1``: visit ``w`` largest first (ties: lower index first), keeping an entry while
   the sum of those visited before it is < ``top_p`` x (sum of ``w`` in index order)
7. one draw ``u``; the token is the first index whose running sum of ``w`` (index order)
   exceeds ``u`` x (the sum of ``w`` in index order); a rounding guard takes the last nonzero ``w``

Sums are left-to-right float64 additions (``numpy.cumsum``), as the JavaScript package
(``web/src/sampling.js``) does them, so the same log-probabilities give the same token.

The settings (``max_words``, ``temperature``, ``top_k``, ``top_p``, ``seed``, ``num_samples``,
``stop``, ``allow_unk``) are declared once, in :class:`SamplingConfig`: their defaults and limits
feed the generation methods' signatures and checks, the ``pocketlm generate`` options and the
JavaScript package's ``web/src/constants.js`` (``web/tools/constants.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np

from .artifact import InputError
from .options import check_fields, option

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class SplitMix64:
    """SplitMix64 with 53-bit uniform floats. ``SplitMix64.for_sample(seed, i)`` is the generator
    of sample ``i``; ``seed=None`` picks a random seed."""

    __slots__ = ("state",)

    def __init__(self, state: int) -> None:
        self.state = state & _MASK

    @classmethod
    def for_sample(cls, seed: int, index: int = 0) -> SplitMix64:
        """The generator of sample ``index`` for ``seed`` (any integer, taken modulo 2**64)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"seed must be an integer, got {seed!r}")
        return cls(cls(int(seed)).next() + index)

    def next(self) -> int:
        """The next 64-bit output."""
        self.state = (self.state + _GAMMA) & _MASK
        return _mix(self.state)

    def random(self) -> float:
        """Uniform in [0, 1) with 53 random bits."""
        return (self.next() >> 11) * (1.0 / 9007199254740992)


@dataclass(frozen=True)
class SamplingConfig:
    """The generation settings, their defaults and limits (checked when built)."""

    max_words: int = field(default=30, metadata=option(
        "Most words to generate per sample.", minimum=0, integer=True))
    temperature: float = field(default=1.0, metadata=option("0 is greedy.", minimum=0))
    top_k: int = field(default=0, metadata=option(
        "Sample among the k likeliest words (0: all).", minimum=0, integer=True))
    top_p: float = field(default=1.0, metadata=option(
        "Nucleus sampling threshold.", minimum=0, maximum=1, min_open=True))
    seed: int | None = field(default=None, metadata=option(
        "Seed for repeatable samples.", integer=True))
    num_samples: int = field(default=1, metadata=option(
        "How many samples, generated together in one batch.", minimum=1, integer=True,
        name="--num"))
    stop: tuple[str, ...] = field(default=(), metadata=option(
        "A word that ends a sample (kept); repeatable.", multiple=True))
    allow_unk: bool = field(default=False, metadata=option(
        "Let <unk> be generated.", cli=False))

    def __post_init__(self) -> None:
        check_fields(self, "generate")


#: The default settings: the generation methods' keyword defaults.
DEFAULTS = SamplingConfig()


def generators(seed: int | None, count: int) -> list[SplitMix64]:
    """The generators of samples 0..count-1 for ``seed`` (``None``: a random seed)."""
    base = secrets.randbits(64) if seed is None else seed
    return [SplitMix64.for_sample(base, i) for i in range(count)]


def pick(logprobs: np.ndarray, rng: SplitMix64, temperature: float = DEFAULTS.temperature,
         top_k: int = DEFAULTS.top_k, top_p: float = DEFAULTS.top_p,
         banned: int | None = None) -> int:
    """One token id sampled from a row of log-probabilities by the procedure above; ``banned``
    (``<unk>`` unless it is allowed) is never picked."""
    z = np.asarray(logprobs, dtype=np.float64).reshape(-1).copy()
    if banned is not None:
        z[banned] = -np.inf
    if temperature == 0:
        return int(np.argmax(z))
    u = rng.random()
    if temperature != 1:
        z /= float(temperature)
    vocab = len(z)
    if 0 < top_k < vocab:
        kth = np.sort(z)[vocab - top_k]
        z[z < kth] = -np.inf
    top = z[int(np.argmax(z))]
    if not np.isfinite(top):
        return int(np.argmax(z))
    w = np.where(z == -np.inf, 0.0, np.exp(z - top))
    if top_p < 1:
        total = np.cumsum(w)[-1]
        order = np.argsort(-w, kind="stable")
        ordered = w[order]
        before = np.concatenate(([0.0], np.cumsum(ordered)[:-1]))   # sums of those before
        w[order[~(before < top_p * total)]] = 0.0
    running = np.cumsum(w)
    target = u * running[-1]
    above = np.flatnonzero(running > target)
    if above.size:
        return int(above[0])
    return int(np.flatnonzero(w)[-1])
