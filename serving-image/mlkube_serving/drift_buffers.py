"""The drift hook's copying lane: preallocated per-layout `SampleBuffer`s, written in place.

Samples no byte lane (`drift_lane`) takes go here: requests bigger than `HOLD_BYTES` or
with more than `max_rows` rows (their first `max_rows` rows are copied), layouts beyond
`MAX_LANES`, full lanes, several inputs, lane samples whose predictions are not one per row.
At most `max_buffers` buffers exist; when all are full, samples are dropped (the hook
counts them) until the sender has sent one. Not thread-safe: the hook calls it under its lock.
"""

from __future__ import annotations

from mlkube_serving.drift_batch import Array, Layout, SampleBuffer, wire_dtype
from mlkube_serving.tensors import Tensor, column_names

# What `put` did with a sample.
KEPT, SEALED, FULL, NOT_NUMERIC = range(4)
# Identity token of buffers filled from several inputs: their columns are the inputs' names, so
# the fast path (single input, `buf.names is feature_names`) must never match them.
_SEVERAL_INPUTS = object()


class Buffers:
    """The open buffer being filled, sealed ones waiting for the sender, free ones for reuse."""

    def __init__(self, batch_rows: int, buffer_bytes: int, max_buffers: int) -> None:
        self._batch_rows = batch_rows
        self._buffer_bytes = buffer_bytes
        self._max_buffers = max_buffers
        self.open: SampleBuffer | None = None
        self.sealed: list[SampleBuffer] = []
        self.free: list[SampleBuffer] = []
        self._allocated = 0
        self.exhausted = False  # every buffer is full: drop at once until one is freed

    def put(
        self,
        model: str,
        names: list[str] | None,
        inputs: list[Tensor],
        matrix: Array,
        predictions: Array | None,
        k: int,
    ) -> int:
        """Copy `k` rows in: KEPT, SEALED (kept, and a full buffer waits for the sender),
        FULL (dropped: every buffer is full) or NOT_NUMERIC (for the JSON lane)."""
        buf = self.open
        if (
            buf is not None
            and buf.names is names
            and buf.model == model
            and matrix.dtype is buf.rows_dtype
            and (None if predictions is None else predictions.dtype) is buf.pred_dtype
            and matrix.shape[1] == buf.width
            and buf.used + k <= buf.capacity
        ):
            buf.put(matrix, predictions, k)
            return KEPT
        if self.exhausted:
            return FULL
        rows_dtype = wire_dtype(matrix.dtype)
        pred_dtype = None if predictions is None else wire_dtype(predictions.dtype)
        if rows_dtype is None or (predictions is not None and pred_dtype is None):
            return NOT_NUMERIC
        token = names if len(inputs) == 1 else _SEVERAL_INPUTS
        columns = column_names(inputs, names)
        layout: Layout = (model, columns, matrix.shape[1], rows_dtype, pred_dtype)
        result = KEPT
        if buf is None or buf.layout() != layout or buf.used + min(k, buf.capacity) > buf.capacity:
            if buf is not None and buf.used:
                self.sealed.append(buf)
                result = SEALED
            elif buf is not None:
                self.free.append(buf)
            self.open = buf = self._take(layout, token)
            if buf is None:
                self.exhausted = True
                return FULL
        buf.names = token
        buf.put(matrix, predictions, min(k, buf.capacity))  # a huge row: fewer rows fit
        return result

    def _take(self, layout: Layout, token: object) -> SampleBuffer | None:
        """A free buffer of this layout, else a new one while fewer than `max_buffers` exist."""
        for i, buf in enumerate(self.free):
            if buf.layout() == layout:
                return self.free.pop(i)
        if self._allocated >= self._max_buffers:
            if not self.free:
                return None
            self.free.pop()  # a free buffer of another layout: replace it
            self._allocated -= 1
        self._allocated += 1
        return SampleBuffer.for_layout(layout, token, self._batch_rows, self._buffer_bytes)

    def take_sealed(self, seal: bool) -> list[SampleBuffer]:
        """The sealed buffers for the sender (with `seal`, the open one too if it has rows)."""
        if seal and self.open is not None and self.open.used:
            self.sealed.append(self.open)
            self.open = None
        batches, self.sealed = self.sealed, []
        return batches

    def recycle(self, buf: SampleBuffer) -> None:
        """A sent buffer: empty, free for reuse."""
        buf.reset()
        self.free.append(buf)
        self.exhausted = False

    def pending(self) -> int:
        held = sum(b.samples for b in self.sealed)
        return held + (self.open.samples if self.open is not None else 0)
