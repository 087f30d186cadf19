"""Windows of a token stream: the one place where training and evaluation slice tokens.

The split (a memory-mapped ``.bin``, never loaded whole) is cut into ``rows`` equal contiguous
rows, the tail that does not fill a row dropped; nothing is copied until a window is asked for::

    stream  a b c <eos> d e <eos> f g h i <eos> ...             (N tokens, memory-mapped)
    rows    [a b c <eos>]                                      (rows, C), C = N // rows
            [d e <eos> f]                                      (a view: no copy)
            [g h i <eos>]
    shard   rank k of W keeps rows [k*rows/W, (k+1)*rows/W): a contiguous piece of the stream
    window(start, length)
            x = rows[:, start : start+length]                  (rows/W, length) int64
            y = rows[:, start+1 : start+length+1]              the next tokens
            copied per window (pinned memory and a non-blocking copy on CUDA)

Successive windows carry the (detached) state from one to the next::

    row    |-- window 1 --|-- window 2 --| ...
    state  0 ───────────▶ h1 ──────────▶ h2     (gradient stops at each ▶)

Window lengths are chosen by the caller, one per window, so they may vary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pocketlm.runtime.artifact import EOS_ID, PocketLMError

if TYPE_CHECKING:
    import torch


class TokenRows:
    """A token stream seen as ``rows`` contiguous rows, read window by window.

    ``max_columns`` keeps only the first columns of every row (a bounded, fixed sample spread
    over ``rows`` places of the split); ``shard``/``shards`` keep one contiguous block of rows.
    """

    resets = False   # the state is carried from one window to the next

    def __init__(self, stream: np.ndarray, rows: int, max_columns: int = 0, shard: int = 0,
                 shards: int = 1) -> None:
        columns = len(stream) // rows
        if columns < 2:
            raise PocketLMError(f"a stream of {len(stream)} tokens is too short for {rows} "
                                f"rows; use a smaller --batch-size or a larger split")
        if rows % shards:
            raise PocketLMError(f"{rows} rows cannot be shared by {shards} processes; use a "
                                f"--batch-size divisible by the number of processes")
        view = stream[:rows * columns].reshape(rows, columns)     # (rows, C), a view
        if max_columns:
            view = view[:, :max(2, max_columns)]
        per = rows // shards
        self.view = view[shard * per:(shard + 1) * per]           # (rows / shards, C)
        self.rows_total = rows

    @property
    def rows(self) -> int:
        return self.view.shape[0]

    @property
    def columns(self) -> int:
        return self.view.shape[1]

    @property
    def predictions(self) -> int:
        """Targets in all windows of one pass: every column after the first, every row."""
        return self.rows * (self.columns - 1)

    def done(self, start: int) -> bool:
        """True when no window starts at column ``start`` (a pass is over)."""
        return start >= self.columns - 1

    def count_windows(self, length: int) -> int:
        """Windows in one pass at a fixed ``length``."""
        return len(range(0, self.columns - 1, length))

    def array(self, start: int, length: int) -> np.ndarray:
        """Inputs and targets of one window as one int64 copy ``(rows, length' + 1)``, where
        ``length'`` is ``length`` cut at the end of the rows."""
        return np.array(self.view[:, start:start + length + 1], dtype=np.int64)

    def window(self, start: int, length: int, device: torch.device, index: int = 0,
               epoch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` on ``device``: ``(rows, L)`` inputs and the ``(rows, L)`` next tokens
        (``index`` and ``epoch`` are for :class:`LineWindows`' signature)."""
        return _split(self.array(start, length), device)


def batchify(stream: np.ndarray, batch: int) -> np.ndarray:
    """Cut a 1-D token stream into ``batch`` contiguous rows: ``[batch, len(stream) // batch]``
    int64, a copy (for small splits; :class:`TokenRows` reads large ones window by window)."""
    return np.asarray(TokenRows(stream, batch).view, dtype=np.int64)


class LineWindows:
    """Windows that start at line boundaries from the zero state, as sentence scoring does.

    Every window takes ``rows`` random lines of the split (the positions of an ``<eos>``, in an
    order drawn once per epoch from ``seed``) and reads ``length + 1`` tokens from each: ``<eos>``
    first, then the line and whatever follows it. A pass reads as many tokens as the carried
    stream would (``len(stream) // rows`` per row), so epochs are comparable::

        stream   ... <eos> w1 w2 w3 <eos> v1 v2 ...                  (memory-mapped)
        row b    <eos> w1 w2 w3 <eos> v1 ...                          state 0 every window

    Positions count tokens per row, like :class:`TokenRows`; the window's index in the pass
    (``index``) picks its lines, so a resumed run reads the same windows.
    """

    resets = True

    def __init__(self, stream: np.ndarray, rows: int, starts: np.ndarray, seed: int,
                 shard: int = 0, shards: int = 1) -> None:
        if len(starts) == 0 or len(stream) < 2:
            raise PocketLMError("the training split has no line boundary (<eos>) to start "
                                "windows at; use --windows stream")
        if rows % shards:
            raise PocketLMError(f"{rows} rows cannot be shared by {shards} processes; use a "
                                f"--batch-size divisible by the number of processes")
        self.stream, self.starts, self.seed = stream, starts, seed
        self.rows_total = rows
        per = rows // shards
        self.offset, self.per = shard * per, per
        self.columns = max(2, len(stream) // rows)
        self._order: tuple[int, np.ndarray] | None = None

    @property
    def rows(self) -> int:
        return self.per

    def done(self, start: int) -> bool:
        return start >= self.columns - 1

    def count_windows(self, length: int) -> int:
        return len(range(0, self.columns - 1, length))

    def _lines(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.starts))
            self._order = (epoch, order)
        return self._order[1]

    def array(self, index: int, length: int, epoch: int) -> np.ndarray:
        """Window ``index`` of pass ``epoch`` as one int64 copy ``(rows, length + 1)``."""
        order = self._lines(epoch)
        pick = (index * self.rows_total + self.offset + np.arange(self.per)) % len(order)
        length = min(length, len(self.stream) - 1)
        begin = np.minimum(self.starts[order[pick]], len(self.stream) - length - 1)   # (rows,)
        return np.asarray(self.stream[begin[:, None] + np.arange(length + 1)], dtype=np.int64)

    def window(self, start: int, length: int, device: torch.device, index: int = 0,
               epoch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` on ``device``, ``(rows, L)`` each; ``start`` only shortens the last window
        of a pass."""
        length = min(length, self.columns - 1 - start)
        return _split(self.array(index, length, epoch), device)


def training_windows(stream: np.ndarray, kind: str, rows: int, seed: int, shard: int = 0,
                     shards: int = 1) -> TokenRows | LineWindows:
    """The training split's windows for ``--windows kind``: ``"stream"`` (:class:`TokenRows`,
    state carried) or ``"verse"`` (:class:`LineWindows` at every ``<eos>``, state reset)."""
    if kind == "verse":
        starts = np.flatnonzero(np.asarray(stream[:-1]) == EOS_ID)
        return LineWindows(stream, rows, starts, seed, shard=shard, shards=shards)
    return TokenRows(stream, rows, shard=shard, shards=shards)


def _split(array: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(rows, L + 1)`` window on ``device`` (pinned memory and a non-blocking copy on CUDA)
    as inputs ``(rows, L)`` and targets ``(rows, L)``."""
    import torch

    chunk = torch.from_numpy(array)
    if device.type == "cuda":
        chunk = chunk.pin_memory().to(device, non_blocking=True)
    elif chunk.device != device:
        chunk = chunk.to(device)
    return chunk[:, :-1], chunk[:, 1:]
