"""Score many word sequences sharing prefixes: each distinct prefix is fed once.

An n-best list of 500 hypotheses repeats its first words hundreds of times. The sequences go
into a word trie and the trie is walked level by level, every node of a level advanced in one
batch (chunks of ``batch_rows``)::

    "and god said"      root ─ and ─ god ─ said ─ <eos>          level 1: [and]
    "and god saw"                       └─ saw ─ <eos>          level 2: [god]
    "and got said"            └─ got ─ said ─ <eos>              level 3: [said, saw, said]

A sentence's score is the sum along its path plus ln P(<eos>) at its last node: with no hidden
tokens it equals :meth:`LanguageModel.score` (``bos=True, eos=True``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model import LanguageModel
from ..state import State
from .wordstep import Prepared, WordStepper


class PrefixScorer:
    """Sentence log-probabilities (nats) of word sequences through a shared-prefix trie."""

    def __init__(self, lm: LanguageModel, hidden: Sequence[str] = (), floor: float = -3.0,
                 batch_rows: int = 512, share: bool = True) -> None:
        self.stepper = WordStepper(lm, hidden, floor)
        self.batch_rows = int(batch_rows)
        #: False: every sentence gets a path of its own (the same batched stepping, no shared
        #: prefixes), to measure what sharing saves
        self.share = share
        #: distinct prefixes fed and sentences scored by the last call
        self.nodes = 0

    def score(self, sentences: Sequence[Sequence[str] | str]) -> list[float]:
        """ln P of each sentence (a string is split on whitespace)."""
        seqs = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        # trie: node id -> children {word: node id}; node 0 is the root
        children: list[dict[object, int]] = [{}]
        ends: list[list[int]] = [[]]
        depth_nodes: list[list[int]] = [[0]]
        words: list[str] = [""]
        parents: list[int] = [-1]
        for i, seq in enumerate(seqs):
            node = 0
            for d, word in enumerate(seq, 1):
                key = word if self.share or d > 1 else (i, word)
                nxt = children[node].get(key)
                if nxt is None:
                    nxt = children[node][key] = len(words)
                    children.append({})
                    ends.append([])
                    words.append(word)
                    parents.append(node)
                    if len(depth_nodes) <= d:
                        depth_nodes.append([])
                    depth_nodes[d].append(nxt)
                node = nxt
            ends[node].append(i)
        self.nodes = len(words) - 1
        total = np.zeros(len(seqs))
        # level 0: the root
        level = self.stepper.prepare(self.stepper.start(1))
        row_of = {0: 0}
        path = {0: 0.0}
        self._finish([0], level, row_of, path, ends, total)
        for d in range(1, len(depth_nodes)):
            nodes = depth_nodes[d]
            states, new_rows = [], {}
            for a in range(0, len(nodes), self.batch_rows):
                chunk = nodes[a:a + self.batch_rows]
                lp, state = self.stepper.advance(
                    level, [row_of[parents[n]] for n in chunk], [words[n] for n in chunk])
                for j, n in enumerate(chunk):
                    path[n] = path[parents[n]] + float(lp[j])
                    new_rows[n] = a + j
                states.append(state)
            for n in depth_nodes[d - 1]:
                path.pop(n, None)
            level = self.stepper.prepare(State.concat(states))
            row_of = new_rows
            self._finish(nodes, level, row_of, path, ends, total)
        return [float(x) for x in total]

    def _finish(self, nodes: list[int], level: Prepared, row_of: dict[int, int],
                path: dict[int, float], ends: list[list[int]], total: np.ndarray) -> None:
        ending = [n for n in nodes if ends[n]]
        if not ending:
            return
        lp = self.stepper.end(level, [row_of[n] for n in ending])
        for n, value in zip(ending, lp):
            for i in ends[n]:
                total[i] = path[n] + float(value)
