"""The drift hook's request-path lanes: a sampled request's row and prediction as two small byte
strings, joined into one batch body when the sender runs.

Why (docs/benchmarks/drift-overhead.md, issue 16): inside a loaded model server every numpy
call on the request path is cold (~0.5-1.5 us for a one-row slice assignment), holding the
request's arrays until the flush cost about as much again, and the sender stacked 2,048 arrays
with `np.concatenate` (~0.4 us a sample). `ndarray.tobytes()` is one C call and a memcpy: the
request's arrays are freed with the request, and the sender builds the body with one
`bytes.join` (~0.1 us a sample), since a lane's samples share one layout.

A lane's layout (model, columns, dtypes, width) never changes, and its samples are (row bytes,
prediction bytes) pairs in a deque: `append` and `popleft` are atomic, so the request path takes
no lock (it runs on the worker's loop and in its inference thread) and a sample is never lost
between the two. Lanes are never dropped (at most `MAX_LANES` layouts), so a sample appended to
a lane that stopped being the hook's current one is still sent by the next flush.
What a lane holds is bounded: `capacity` samples of at most `HOLD_BYTES` of features.

`BodyLane` is the plain V2 shortcut's cheaper lane: it keeps the request and reply bodies
themselves and leaves their parsing to the sidecar (issue 16, eighth pass).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import numpy as np

from mlkube_serving.drift_batch import bodies_batch, header_bytes, wire_dtype

HOLD_BYTES = 4096  # a request's features at most this big take a lane, bigger ones the buffers
MAX_LANES = 4  # layouts with a lane per worker; samples of others take the buffers
SAMPLE_BYTES = 8192  # a plain request and its reply at most this big take a body lane
# A body lane's bytes: a batch fits a spool record (at most half the 4 MiB ring) with room.
BODIES_BUDGET = 1024 * 1024
BODIES_FULL = BODIES_BUDGET - SAMPLE_BYTES  # past it another sample may not fit: send

Sample = tuple[bytes, bytes]  # (rows, predictions) in the lane's dtypes, C order


class ByteLane:
    """The samples of one layout, as byte strings, until the sender joins them."""

    __slots__ = (
        "capacity", "dtype", "max_bytes", "model", "names", "pred_dtype", "queue", "row_bytes",
        "width",
    )  # fmt: skip

    def __init__(
        self, capacity: int, max_rows: int, model: str | None = None,
        names: list[str] | None = None, dtype: Any = None, pred_dtype: Any = None,
        width: int = 0,
    ) -> None:  # fmt: skip
        self.capacity = capacity
        self.model = model
        self.names = names  # the runtime's object: checked by identity
        self.dtype: np.dtype[Any] | None = dtype  # checked by identity (numpy's builtin dtypes)
        self.pred_dtype: np.dtype[Any] | None = pred_dtype
        self.width = width
        self.row_bytes = width * dtype.itemsize if dtype is not None else 0
        # rows a sample may have: `max_rows` and `HOLD_BYTES` of features; 0 when unbound
        self.max_bytes = min(max_rows * self.row_bytes, HOLD_BYTES) if width else -1
        self.queue: deque[Sample] = deque()

    @classmethod
    def for_sample(
        cls, capacity: int, max_rows: int, model: str, names: list[str] | None, rows: Any,
        predictions: Any,
    ) -> ByteLane | None:  # fmt: skip
        """A lane of this sample's layout, or None if a lane does not take it (2-D features of
        a raw-sendable dtype within the limits, one prediction per row)."""
        dtype, pred_dtype = rows.dtype, predictions.dtype
        if wire_dtype(dtype) is not dtype or wire_dtype(pred_dtype) is not pred_dtype:
            return None  # a big-endian or non-numeric dtype: the buffers convert it
        if rows.ndim != 2 or predictions.ndim not in (1, 2) or capacity < 1:
            return None
        k, width = rows.shape
        if width == 0 or (names is not None and len(names) != width):
            return None
        lane = cls(capacity, max_rows, model, names, dtype, pred_dtype, width)
        if not 0 < rows.nbytes <= lane.max_bytes or predictions.size != k:
            return None
        return lane

    def layout(self) -> tuple[Any, ...]:
        return (self.model, id(self.names), self.dtype, self.pred_dtype, self.width)

    def drain(self) -> list[Sample]:
        """The samples held now (ones appended meanwhile stay for the next drain)."""
        queue = self.queue
        return [queue.popleft() for _ in range(len(queue))]

    def body(
        self, columns: list[str] | None, samples: list[Sample]
    ) -> tuple[bytes | None, int, list[Sample]]:
        """(one batch body in the `drift_batch` format, its samples, samples whose predictions
        are not one per row — the caller copies those through the buffers)."""
        assert self.dtype is not None and self.pred_dtype is not None and self.model is not None
        rows, predictions = zip(*samples, strict=True)
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        counts = lengths // self.row_bytes
        aligned = np.fromiter(map(len, predictions), np.int64, len(rows)) == (
            counts * self.pred_dtype.itemsize
        )
        others: list[Sample] = []
        if not aligned.all():
            others = [s for s, ok in zip(samples, aligned.tolist(), strict=True) if not ok]
            keep = aligned.tolist()
            rows = tuple(r for r, ok in zip(rows, keep, strict=True) if ok)
            predictions = tuple(p for p, ok in zip(predictions, keep, strict=True) if ok)
            counts = counts[aligned]
            if not rows:
                return None, 0, others
        header = header_bytes(self.model, columns, len(rows), int(counts.sum()), self.width,
                              self.dtype, self.pred_dtype)  # fmt: skip
        return b"".join([header, *rows, *predictions]), len(rows), others


class BodyLane:
    """The plain V2 shortcut's samples of one model: each request body and reply body as they
    crossed the wire, one after the other in a flat list. Both exist already (a classifier's
    one-row reply is even shared), so keeping a sample is two list appends; the sidecar parses
    them (`bodies_batch`). Measured against copying both into a preallocated slab (two
    `bytearray` slice stores): the copy cost more than holding the bodies until the flush
    (docs/benchmarks/drift-overhead.md, eighth pass). `DriftHook.offer_plain` keeps a sample,
    and `v2_plain.infer_plain` the same way inline; `wake` is the hook's sender's event.

    Not thread-safe, and needs not be: the shortcut runs on the worker's loop only (the inline
    lane), as does the sender that swaps the list out. Bounded: `capacity` samples (`limit`
    items) of at most `SAMPLE_BYTES` each (request and reply together), `BODIES_BUDGET` bytes
    in all, so one batch always fits a spool record (half the ring) and the sidecar's limit.
    """

    __slots__ = ("held", "items", "limit", "model", "names", "wake", "width")

    def __init__(
        self, capacity: int, model: str | None = None, names: list[str] | None = None,
        width: int = 0, wake: asyncio.Event | None = None,
    ) -> None:  # fmt: skip
        self.limit = 2 * capacity
        self.model = model
        self.names = names  # the runtime's object: checked by identity
        self.width = width
        self.items: list[bytes] = []  # request 1, reply 1, request 2, ...
        self.held = 0  # bytes of the bodies in `items`
        self.wake = wake  # set when the lane is full (None only for the hook's unbound lane)

    def full(self) -> bool:
        """No room for another sample: `limit` items, or not a biggest sample's bytes left."""
        return len(self.items) >= self.limit or self.held > BODIES_FULL

    def take(self) -> list[bytes]:
        """The bodies held now; the lane goes on with an empty list."""
        items, self.items = self.items, []
        self.held = 0
        return items

    def body(self, items: list[bytes]) -> bytes:
        assert self.model is not None
        columns = None if self.names is None else list(self.names)
        return bodies_batch(self.model, columns, self.width, items)
