"""Read and validate the model server's compact sample batches (`DRIFT_SAMPLES_BATCH_TYPE`).

The model server sends numeric samples as raw little-endian bytes behind a small JSON header
(the format is written down in `mlkube_serving.drift_batch` and docs/drift.md), because
formatting every float as JSON text cost it several microseconds per sampled request. The
header is checked here, before the sidecar answers, so a malformed batch is refused with a
400 and its reason; the arrays are zero-copy views of the body, which is what the queue's
byte budget counts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mlkube.contract import DRIFT_SAMPLES_BATCH_MAGIC
from mlkube_serving.drift.errors import PayloadError

Array = np.ndarray[Any, Any]
MAX_HEADER_BYTES = 256 * 1024  # room for a few thousand column names; the rest is rows
# Fixed-size numeric dtypes (numpy spelling, little-endian): nothing else is read raw.
DTYPES = frozenset(
    ["|b1", "|i1", "|u1"] + [f"<{kind}{size}" for kind in "iu" for size in (2, 4, 8)]
    + [f"<f{size}" for size in (2, 4, 8)]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """One decoded batch: `count` rows of `width` values, their predictions, the samples."""

    model: str
    columns: list[str] | None
    rows: Array  # (count, width), a view of the body
    predictions: Array | None  # (count,)
    samples: int
    invalid: int = 0  # samples of a bodies batch that did not read (drift.bodies)
    owned: bool = False  # the arrays are the batch's own, not views of the body

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


BATCH_OVERHEAD_BYTES = 1024  # a decoded batch's objects besides its arrays (views, model)
_NAME_BYTES = 8 + 49 + 64  # per column name: list slot, str object, text (longer names: rare)
_OBJECT_BYTES = 8 + 32  # per object-array prediction: its slot and a small str or int


def batch_held_bytes(batch: SampleBatch, body_bytes: int) -> int:
    """What a queued batch keeps alive: the body its arrays view (version 1) or its own
    arrays (version 2), plus its objects; the queue's byte budget counts this."""
    held = BATCH_OVERHEAD_BYTES + _NAME_BYTES * len(batch.columns or ())
    if not batch.owned:
        return held + body_bytes
    held += batch.rows.nbytes
    predictions = batch.predictions
    if predictions is not None:
        held += predictions.size * (_OBJECT_BYTES if predictions.dtype.kind == "O" else
                                    predictions.itemsize)  # fmt: skip
    return held


def read_header(body: bytes, magic: bytes, what: str) -> tuple[dict[str, Any], str, int]:
    """(header, its model, where the data starts) of a batch of either version."""
    prefix = len(magic) + 4
    if not body.startswith(magic) or len(body) < prefix:
        raise PayloadError(f"not a {what} (bad magic or version)")
    (size,) = struct.unpack_from("<I", body, len(magic))
    end = prefix + size
    if size > MAX_HEADER_BYTES or end > len(body):
        raise PayloadError(f"batch header of {size} bytes does not fit the body")
    try:
        header = orjson.loads(body[prefix:end])
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"batch header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise PayloadError("batch header must be a JSON object")
    model = header.get("model")
    if not isinstance(model, str):
        raise PayloadError("batch header 'model' must be a string")
    return header, model, end


def decode_batch(body: bytes) -> SampleBatch:
    """Validate a batch body and view its arrays; PayloadError says what is wrong."""
    header, model, end = read_header(body, DRIFT_SAMPLES_BATCH_MAGIC, "samples batch")
    count, width, samples = (natural(header, k) for k in ("count", "width", "samples"))
    if width < 1:
        raise PayloadError("batch header 'width' must be at least 1")
    columns = header_columns(header, width)
    rows_dtype = _dtype(header.get("rows"), "rows")
    pred_spec = header.get("predictions")
    pred_dtype = None if pred_spec is None else _dtype(pred_spec, "predictions")
    rows_bytes = count * width * rows_dtype.itemsize
    pred_bytes = 0 if pred_dtype is None else count * pred_dtype.itemsize
    if end + rows_bytes + pred_bytes != len(body):
        raise PayloadError(
            f"batch body has {len(body) - end} data bytes; its header describes "
            f"{rows_bytes + pred_bytes} ({count} rows of {width} {rows_dtype.str})"
        )
    rows = np.frombuffer(body, rows_dtype, count * width, end).reshape(count, width)
    predictions = (
        None if pred_dtype is None else np.frombuffer(body, pred_dtype, count, end + rows_bytes)
    )
    return SampleBatch(model, columns, rows, predictions, samples)


def header_columns(header: dict[str, Any], width: int) -> list[str] | None:
    columns = header.get("columns")
    if columns is not None and (
        not isinstance(columns, list)
        or len(columns) != width
        or not all(isinstance(c, str) for c in columns)
    ):
        raise PayloadError(f"batch header 'columns' must be null or {width} names")
    return columns


def natural(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PayloadError(f"batch header {key!r} must be a non-negative integer")
    return value


def _dtype(spec: object, what: str) -> np.dtype[Any]:
    if not isinstance(spec, str) or spec not in DTYPES:
        raise PayloadError(f"batch {what} dtype {spec!r} is not one of {sorted(DTYPES)}")
    return np.dtype(spec)
