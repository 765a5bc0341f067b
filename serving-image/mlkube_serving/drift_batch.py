"""Preallocated sample buffers and the compact batch format the drift sidecar reads.

Why: at 100% sampling the hook ran once per request, and its cost was per-sample Python
objects (row copies, tuples, grouping keys), JSON text of every float (~20 bytes a value) and
the loopback kernel work of sending that text. A `SampleBuffer` is a rows x features array
allocated once per layout and written in place (one numpy slice assignment per request), and
a batch goes out as its raw bytes behind a small JSON header, so the server neither builds
objects per sample nor formats numbers, and sends 8 bytes per FP64 value instead of ~20.

Batch format (version 1; the sidecar's `mlkube_serving.drift.batch` reads it):
    magic `DRIFT_SAMPLES_BATCH_MAGIC` | header length (uint32, little-endian) | header JSON
    | rows (count x width values, C order) | predictions (count values, if any)
header: {"model", "columns": [names] | null, "samples", "count", "width",
         "rows": numpy dtype string, "predictions": numpy dtype string | null}
Only fixed-size little-endian bool/int/uint/float dtypes are sent; anything else (strings,
objects) takes the JSON lane in `drift_json`.

Bodies format (version 2, `bodies_batch`): the plain V2 shortcut's samples as they crossed the
wire, so the request path copies nothing and the sidecar does the parsing:
    magic `DRIFT_SAMPLES_BODIES_MAGIC` | header length (uint32) | header JSON
    | request 1 NUL reply 1 NUL request 2 NUL ... reply n (no NUL after the last)
header: {"model", "columns": [names] | null, "samples", "width"}
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from mlkube.contract import DRIFT_SAMPLES_BATCH_MAGIC, DRIFT_SAMPLES_BODIES_MAGIC
from mlkube_serving.tensors import Tensor

Array = np.ndarray[Any, Any]
_NUMERIC = "biuf"


def wire_dtype(dtype: np.dtype[Any]) -> np.dtype[Any] | None:
    """The little-endian dtype a numeric column travels as; None if it cannot be sent raw."""
    if dtype.kind not in _NUMERIC or dtype.itemsize > 8:
        return None
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


def predictions_of(outputs: list[Tensor]) -> Array | None:
    """One prediction per row (the `predict` output, else the first); None if not one each."""
    chosen = outputs[0]
    if chosen.name != "predict":
        chosen = next((t for t in outputs if t.name == "predict"), chosen)
    data = chosen.data
    if data.ndim == 1:
        return data
    if data.ndim == 0:
        return data.reshape(1)
    if data.ndim == 2 and data.shape[1] == 1:
        return data[:, 0]
    return None  # several values per row: the sidecar would count them as null anyway


# (model, columns, width, rows dtype, predictions dtype or None): what one buffer holds.
Layout = tuple[str, list[str] | None, int, np.dtype[Any], np.dtype[Any] | None]


class SampleBuffer:
    """Rows and predictions of one layout (model, columns, width, dtypes), filled in place.

    Not thread-safe by itself: the hook holds its lock around `put` and around sealing.
    """

    __slots__ = (
        "_header_tail",
        "capacity",
        "columns",
        "model",
        "names",
        "pred_dtype",
        "predictions",
        "rows",
        "rows_dtype",
        "samples",
        "used",
        "width",
    )

    def __init__(
        self,
        model: str,
        names: object,
        columns: list[str] | None,
        width: int,
        rows_dtype: np.dtype[Any],
        predictions_dtype: np.dtype[Any] | None,
        capacity: int,
    ) -> None:
        self.model = model
        # The runtime's feature_names object (or a token): the hot path checks it by identity.
        self.names = names
        self.columns = columns
        self.width = width
        self.rows: Array = np.empty((capacity, width), dtype=rows_dtype)
        self.predictions: Array | None = (
            None if predictions_dtype is None else np.empty(capacity, dtype=predictions_dtype)
        )
        # The hook's fast path compares the request's dtypes with these by identity.
        self.rows_dtype = self.rows.dtype
        self.pred_dtype = None if self.predictions is None else self.predictions.dtype
        self.capacity = capacity
        self.used = 0
        self.samples = 0
        # Everything of the header but the counts is fixed for the buffer: encode it once.
        self._header_tail = orjson.dumps(
            {
                "model": model,
                "columns": columns,
                "width": width,
                "rows": self.rows.dtype.str,
                "predictions": None if self.predictions is None else self.predictions.dtype.str,
            }
        )[1:]

    @classmethod
    def for_layout(
        cls, layout: Layout, names: object, max_rows: int, max_bytes: int
    ) -> SampleBuffer:
        """A buffer of at most `max_rows` rows and about `max_bytes` (at least one row)."""
        model, columns, width, rows_dtype, pred_dtype = layout
        row_bytes = width * rows_dtype.itemsize + (pred_dtype.itemsize if pred_dtype else 0)
        capacity = max(1, min(max_rows, max_bytes // max(1, row_bytes)))
        return cls(model, names, columns, width, rows_dtype, pred_dtype, capacity)

    def layout(self) -> Layout:
        return (self.model, self.columns, self.width, self.rows_dtype, self.pred_dtype)

    def put(self, matrix: Array, predictions: Array | None, k: int) -> None:
        """Copy `k` rows (and their predictions) in; the caller checked the layout and room.

        (The hook's fast path does the same inline: a method call is a tenth of the cost.)"""
        i = self.used
        j = i + k
        self.rows[i:j] = matrix if k == matrix.shape[0] else matrix[:k]
        if self.predictions is not None and predictions is not None:
            self.predictions[i:j] = predictions if k == predictions.shape[0] else predictions[:k]
        self.used = j
        self.samples += 1

    def reset(self) -> None:
        self.used = 0
        self.samples = 0

    def body(self) -> bytes:
        """The batch as sent: header, then the filled rows and predictions as raw bytes."""
        n = self.used
        header = b'{"samples":%d,"count":%d,' % (self.samples, n) + self._header_tail
        parts: list[Any] = [DRIFT_SAMPLES_BATCH_MAGIC, struct.pack("<I", len(header)), header]
        parts.append(self.rows[:n])
        if self.predictions is not None:
            parts.append(self.predictions[:n])
        return b"".join(parts)


def header_bytes(
    model: str,
    columns: list[str] | None,
    samples: int,
    count: int,
    width: int,
    rows: np.dtype[Any],
    predictions: np.dtype[Any] | None,
) -> bytes:
    """Magic, header length and header of a batch of `count` rows (the data follows)."""
    header = orjson.dumps(
        {
            "model": model,
            "columns": columns,
            "samples": samples,
            "count": count,
            "width": width,
            "rows": rows.str,
            "predictions": None if predictions is None else predictions.str,
        }
    )
    return b"".join((DRIFT_SAMPLES_BATCH_MAGIC, struct.pack("<I", len(header)), header))


def bodies_batch(model: str, columns: list[str] | None, width: int, items: list[bytes]) -> bytes:
    """A version-2 batch of `len(items) // 2` samples: request and reply bodies alternating,
    NUL-separated (valid JSON text never holds a NUL byte: the shortcut parsed each request,
    orjson wrote each reply). One join, the header glued to the first body: no per-sample work
    on the server's loop, and the ~1 MiB of bodies copied once, not twice."""
    header = orjson.dumps(
        {"model": model, "columns": columns, "samples": len(items) // 2, "width": width}
    )
    head = b"".join((DRIFT_SAMPLES_BODIES_MAGIC, struct.pack("<I", len(header)), header))
    if not items:
        return head
    parts = list(items)  # the caller's list as it was
    parts[0] = head + parts[0]
    return b"\0".join(parts)
