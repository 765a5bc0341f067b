"""Count-based sliding window over encoded samples, with slot counts kept up to date.

The window holds the slot codes of the last `size` rows in a ring buffer (one int32 column per
tracked feature) and a flat count array updated by two bincounts per batch (evicted rows out,
new rows in). Evaluating drift therefore reads ~100 counts per feature instead of rescanning
the window, and appending costs O(batch), whatever the window size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Codes = npt.NDArray[np.int32]


class SlidingWindow:
    """The last `size` rows of slot codes and their per-column slot counts."""

    def __init__(self, size: int, columns: int, stride: int) -> None:
        if size < 1 or columns < 1 or stride < 1:
            raise ValueError("window size, columns and stride must be >= 1")
        self.size = size
        self.columns = columns
        self.stride = stride  # slots reserved per column in the flat count array
        self._codes = np.zeros((size, columns), dtype=np.int32)
        self._offsets = np.arange(columns, dtype=np.int32) * stride
        self._counts = np.zeros(columns * stride, dtype=np.int64)
        self._pos = 0
        self.filled = 0

    def append(self, codes: Codes) -> None:
        """Add rows (k, columns) of slot codes, evicting the oldest rows once full."""
        k = codes.shape[0]
        if k == 0:
            return
        if k >= self.size:
            self._codes[:] = codes[-self.size :]
            self._counts = self._bincount(self._codes)
            self._pos, self.filled = 0, self.size
            return
        idx = (self._pos + np.arange(k)) % self.size
        # Before the first wrap only the rows below `filled` hold data.
        old = idx if self.filled == self.size else idx[idx < self.filled]
        if old.size:
            self._counts -= self._bincount(self._codes[old])
        self._codes[idx] = codes
        self._counts += self._bincount(codes)
        self._pos = (self._pos + k) % self.size
        self.filled = min(self.size, self.filled + k)

    def _bincount(self, codes: Codes) -> npt.NDArray[np.int64]:
        flat = (codes + self._offsets).ravel()
        counts: npt.NDArray[np.int64] = np.bincount(flat, minlength=self.columns * self.stride)
        return counts

    def slot_counts(self) -> npt.NDArray[np.int64]:
        """A copy of the counts as (columns, stride)."""
        return self._counts.reshape(self.columns, self.stride).copy()
