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

from pocketlm.runtime.artifact import PocketLMError

if TYPE_CHECKING:
    import torch


class TokenRows:
    """A token stream seen as ``rows`` contiguous rows, read window by window.

    ``max_columns`` keeps only the first columns of every row (a bounded, fixed sample spread
    over ``rows`` places of the split); ``shard``/``shards`` keep one contiguous block of rows.
    """

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

    def window(self, start: int, length: int, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` on ``device``: ``(rows, L)`` inputs and the ``(rows, L)`` next tokens."""
        import torch

        chunk = torch.from_numpy(self.array(start, length))          # (rows, L + 1)
        if device.type == "cuda":
            chunk = chunk.pin_memory().to(device, non_blocking=True)
        elif chunk.device != device:
            chunk = chunk.to(device)
        return chunk[:, :-1], chunk[:, 1:]


def batchify(stream: np.ndarray, batch: int) -> np.ndarray:
    """Cut a 1-D token stream into ``batch`` contiguous rows: ``[batch, len(stream) // batch]``
    int64, a copy (for small splits; :class:`TokenRows` reads large ones window by window)."""
    return np.asarray(TokenRows(stream, batch).view, dtype=np.int64)
