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
_PREFIX = len(DRIFT_SAMPLES_BATCH_MAGIC) + 4


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """One decoded batch: `count` rows of `width` values, their predictions, the samples."""

    model: str
    columns: list[str] | None
    rows: Array  # (count, width), a view of the body
    predictions: Array | None  # (count,)
    samples: int

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


def decode_batch(body: bytes) -> SampleBatch:
    """Validate a batch body and view its arrays; PayloadError says what is wrong."""
    if not body.startswith(DRIFT_SAMPLES_BATCH_MAGIC) or len(body) < _PREFIX:
        raise PayloadError("not a samples batch (bad magic or version)")
    (size,) = struct.unpack_from("<I", body, len(DRIFT_SAMPLES_BATCH_MAGIC))
    end = _PREFIX + size
    if size > MAX_HEADER_BYTES or end > len(body):
        raise PayloadError(f"batch header of {size} bytes does not fit the body")
    try:
        header = orjson.loads(body[_PREFIX:end])
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"batch header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise PayloadError("batch header must be a JSON object")
    model = header.get("model")
    if not isinstance(model, str):
        raise PayloadError("batch header 'model' must be a string")
    count, width, samples = (_natural(header, k) for k in ("count", "width", "samples"))
    if width < 1:
        raise PayloadError("batch header 'width' must be at least 1")
    columns = header.get("columns")
    if columns is not None and (
        not isinstance(columns, list)
        or len(columns) != width
        or not all(isinstance(c, str) for c in columns)
    ):
        raise PayloadError(f"batch header 'columns' must be null or {width} names")
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


def _natural(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PayloadError(f"batch header {key!r} must be a non-negative integer")
    return value


def _dtype(spec: object, what: str) -> np.dtype[Any]:
    if not isinstance(spec, str) or spec not in DTYPES:
        raise PayloadError(f"batch {what} dtype {spec!r} is not one of {sorted(DTYPES)}")
    return np.dtype(spec)
