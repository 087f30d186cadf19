"""QWERTY geometry and the typing-error model of keyboard correction (a noisy channel).

Keys sit on three staggered rows; two letters are neighbours when their key centres are at most
1.5 key widths apart (so ``g`` touches ``f h t y v b``)::

    q w e r t y u i o p          row 0, x = column
     a s d f g h j k l           row 1, x = column + 0.25
       z x c v b n m             row 2, x = column + 0.75

``channel_logprob(typed, word)`` is ln P(typed | the user meant ``word``): the cheapest
alignment of the two strings by a weighted optimal-string-alignment distance (each letter
edited at most once), with each edit's cost a log-probability (natural log) from
:data:`EDIT_LOGPROB`. The same word typed right costs 0; a word more than ``max_edits`` plain
edits away gets ``-inf`` (it is not a candidate)::

    kind            example (meant → typed)     ln P
    neighbour       the → thr  (e→r adjacent)   -4.0
    substitution    the → thx  (not adjacent)   -7.0
    transposition   the → teh                   -5.0
    missing letter  the → te                    -5.5
    extra neighbour the → thre (r beside e)     -4.5
    extra letter    the → thqe                  -6.0
    doubled letter  the → thee                  -4.5 (an extra copy of the letter before it)
"""

from __future__ import annotations

import math

ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
ROW_OFFSET = (0.0, 0.25, 0.75)

#: ln P of one edit, by kind (see the module docstring's table).
EDIT_LOGPROB = {"neighbour": -4.0, "substitution": -7.0, "transposition": -5.0,
                "missing": -5.5, "extra_neighbour": -4.5, "extra": -6.0}

#: Key centres (x, y) in key widths, lower-case letters only.
POSITIONS: dict[str, tuple[float, float]] = {
    ch: (col + ROW_OFFSET[row], float(row))
    for row, keys in enumerate(ROWS) for col, ch in enumerate(keys)}


def _neighbours() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for a, (ax, ay) in POSITIONS.items():
        out[a] = frozenset(b for b, (bx, by) in POSITIONS.items()
                           if b != a and math.hypot(ax - bx, ay - by) <= 1.5)
    return out


NEIGHBOURS = _neighbours()


def adjacent(a: str, b: str) -> bool:
    """True when keys ``a`` and ``b`` are neighbours on the QWERTY layout."""
    return b in NEIGHBOURS.get(a, frozenset())


def substitution_logprob(meant: str, typed: str) -> float:
    """ln P(``typed`` pressed for ``meant``): 0 when equal, a neighbour or a far key otherwise."""
    if meant == typed:
        return 0.0
    return EDIT_LOGPROB["neighbour" if adjacent(meant, typed) else "substitution"]


def insertion_logprob(typed: str, before: str, after: str) -> float:
    """ln P of an extra ``typed`` letter between ``before`` and ``after`` (either may be
    ``""``): cheaper when the extra key doubles or touches a letter beside it."""
    if typed in (before, after) or adjacent(typed, before) or adjacent(typed, after):
        return EDIT_LOGPROB["extra_neighbour"]
    return EDIT_LOGPROB["extra"]


def channel_logprob(typed: str, word: str, max_edits: int = 2) -> float:
    """ln P(``typed`` | the user meant ``word``), or ``-inf`` beyond ``max_edits`` plain edits.

    >>> channel_logprob("the", "the")
    0.0
    >>> channel_logprob("thr", "the")     # r is beside e
    -4.0
    """
    n, m = len(typed), len(word)
    if abs(n - m) > max_edits:
        return -math.inf
    if typed == word:
        return 0.0
    neg = -math.inf
    # cost[i][j]: best ln P of typed[:i] given word[:j]; edits[i][j]: plain edits on that path
    cost = [[neg] * (m + 1) for _ in range(n + 1)]
    edits = [[0] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        row_best = neg
        for j in range(m + 1):
            if i == 0 and j == 0:
                continue
            options: list[tuple[float, int]] = []
            if i and j:
                options.append((cost[i - 1][j - 1]
                                + substitution_logprob(word[j - 1], typed[i - 1]),
                                edits[i - 1][j - 1] + (typed[i - 1] != word[j - 1])))
            if i:  # an extra typed letter
                after = word[j] if j < m else ""
                options.append((cost[i - 1][j] + insertion_logprob(
                    typed[i - 1], word[j - 1] if j else "", after), edits[i - 1][j] + 1))
            if j:  # a letter of the word not typed
                options.append((cost[i][j - 1] + EDIT_LOGPROB["missing"], edits[i][j - 1] + 1))
            if (i > 1 and j > 1 and typed[i - 1] == word[j - 2] and typed[i - 2] == word[j - 1]
                    and typed[i - 1] != typed[i - 2]):
                options.append((cost[i - 2][j - 2] + EDIT_LOGPROB["transposition"],
                                edits[i - 2][j - 2] + 1))
            best, used = neg, 0
            for c, e in options:  # the likeliest alignment within max_edits plain edits
                if e <= max_edits and c > best:
                    best, used = c, e
            cost[i][j], edits[i][j] = best, used
            row_best = max(row_best, best)
        if row_best == neg and i:
            return neg
    return cost[n][m]
