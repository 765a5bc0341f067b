"""The drift hook's request-path lane: keep references to a served request's small arrays, pack
them into one batch body when the sender runs.

Why: timed in place inside a loaded model server (bench/drift/hook_ab.py), copying a sample
into a preallocated buffer (`drift_batch.SampleBuffer`) cost ~2 us per sampled request, twice
the same code's cost in a warm loop: two numpy slice assignments, shape and dtype checks and a
helper call, all cold after the ~50 us of serving around them. Storing two references in
preallocated lists is a few list stores; the sender then packs 2,048 samples at once with one
`np.concatenate` per array (C loops, warm), validating the whole batch with a few set
comparisons. Anything the pack does not accept in bulk (mixed dtypes or widths, more rows than
`max_rows`, not one prediction per row, text) is replayed sample by sample through the buffer
path, which copies, truncates and routes text to the JSON lane exactly as before.

Only arrays of at most `HOLD_BYTES` are held (a few rows of a tabular model) that are not views
of something bigger (checked in `DriftHook.offer`), so what the lane pins between flushes is
bounded: `capacity` x `HOLD_BYTES` plus the predictions (8 MiB for 2,048 samples). numpy arrays
are not tracked by the garbage collector, so holding them adds no collector work (holding the
request's Tensor objects or lists would).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlkube_serving.drift_batch import header_bytes, wire_dtype

HOLD_BYTES = 4096  # a request's features at most this big are referenced, bigger ones copied


class RefLane:
    """Preallocated slots for (features, predictions) arrays of one model and column list.

    Not thread-safe by itself: the hook holds its lock around filling and `take`.
    """

    __slots__ = ("_body", "_spare", "capacity", "model", "names", "predictions", "rows", "used")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.model: str | None = None
        self.names: list[str] | None = None  # the runtime's object: checked by identity
        self.rows: list[Any] = [None] * capacity
        self.predictions: list[Any] = [None] * capacity
        self._spare: tuple[list[Any], list[Any]] | None = ([None] * capacity, [None] * capacity)
        self.used = 0
        self._body = bytearray()  # the last batch body, reused by `pack`

    def start(self, model: str, names: list[str] | None, rows: Any, predictions: Any) -> bool:
        """Hold samples of this model and columns from now on, this one first; False while
        others are held or while the sender still packs the previous slots."""
        if self.used or self._spare is None or self.capacity < 2:
            return False
        self.model, self.names = model, names
        self.rows[0], self.predictions[0] = rows, predictions
        self.used = 1
        return True

    def take(self) -> tuple[list[Any], list[Any], int] | None:
        """The filled slots (the caller packs them, then calls `give_back`); empty slots
        take their place. None when nothing is held or the spare slots are still out."""
        if not self.used or self._spare is None:
            return None
        taken = (self.rows, self.predictions, self.used)
        self.rows, self.predictions = self._spare
        self._spare = None
        self.used = 0
        return taken

    def give_back(self, rows: list[Any], predictions: list[Any]) -> None:
        """Drop the references of packed slots and keep the lists as the spare pair."""
        rows[:] = predictions[:] = _nones(self.capacity)
        self._spare = (rows, predictions)

    def pack(
        self, model: str, columns: list[str] | None, taken: tuple[list[Any], list[Any], int],
        max_rows: int,
    ) -> bytes | None:  # fmt: skip
        """One batch body for taken samples, or None when they do not stack (2-D features of
        one width, at most `max_rows` rows each, one 1-D prediction per row, dtypes that cast
        safely to the first sample's): the caller then replays them one by one.

        The arrays are stacked straight into a reused body buffer (`np.concatenate(out=)`):
        per sample that is a C loop step, where per-sample checks in Python or intermediate
        arrays of the whole batch cost more than the stacking."""
        rows, predictions, n = taken
        features, labels = rows[:n], predictions[:n]
        first, label = features[0], labels[0]
        counts = list(map(len, features))
        if first.ndim != 2 or counts != list(map(len, labels)) or max(counts) > max_rows:
            return None
        rows_dtype, pred_dtype = wire_dtype(first.dtype), wire_dtype(label.dtype)
        width = first.shape[1]
        if rows_dtype is None or pred_dtype is None or (columns and len(columns) != width):
            return None
        total = sum(counts)
        header = header_bytes(model, columns, n, total, width, rows_dtype, pred_dtype)
        start = len(header)
        middle = start + total * width * rows_dtype.itemsize
        size = middle + total * pred_dtype.itemsize
        if len(self._body) < size:
            self._body = bytearray(size)
        body = self._body
        body[:start] = header
        try:
            np.concatenate(features, out=np.frombuffer(body, rows_dtype, total * width, start)
                           .reshape(total, width), casting="safe")  # fmt: skip
            np.concatenate(labels, out=np.frombuffer(body, pred_dtype, total, middle),
                           casting="safe")  # fmt: skip
        except (ValueError, TypeError):  # other widths, dimensions, or unsafe casts
            return None
        return bytes(memoryview(body)[:size])


_NONES: dict[int, list[None]] = {}


def _nones(n: int) -> list[None]:
    found = _NONES.get(n)
    if found is None:
        found = _NONES[n] = [None] * n
    return found
