"""runtime/qwerty.py: key neighbours and the typing-error costs of the noisy channel."""

from __future__ import annotations

import math

import pytest

from pocketlm.runtime.qwerty import EDIT_LOGPROB, NEIGHBOURS, adjacent, channel_logprob


def test_neighbours_are_symmetric_and_local() -> None:
    assert NEIGHBOURS["g"] == frozenset("fhtyvb")
    assert all(adjacent(b, a) for a, near in NEIGHBOURS.items() for b in near)
    assert not adjacent("q", "p") and not adjacent("a", "a") and not adjacent("é", "e")


@pytest.mark.parametrize(("typed", "word", "kind"), [
    ("thr", "the", "neighbour"), ("thx", "the", "substitution"), ("teh", "the", "transposition"),
    ("te", "the", "missing"), ("thre", "the", "extra_neighbour"), ("thee", "the",
                                                                    "extra_neighbour"),
    ("thqe", "the", "extra")])
def test_one_edit_costs_its_table_entry(typed: str, word: str, kind: str) -> None:
    assert channel_logprob(typed, word) == EDIT_LOGPROB[kind]


def test_identity_two_edits_and_beyond() -> None:
    assert channel_logprob("lord", "lord") == 0.0
    assert channel_logprob("kird", "lord") == 2 * EDIT_LOGPROB["neighbour"]
    assert channel_logprob("xyz", "lord") == -math.inf
    assert channel_logprob("lordship", "lord") == -math.inf       # four letters too many
    assert channel_logprob("", "a") == EDIT_LOGPROB["missing"]
    assert channel_logprob("kird", "lord", max_edits=1) == -math.inf
