"""Row-oriented payloads (KServe V1 `instances`, Seldon `ndarray`, Azure ML `data`) as tensors.

Row protocols carry a list of rows (lists) or of records (objects); both become one 2-D tensor,
with records ordered by the model's feature names when they match, so column order never depends
on JSON key order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from mlkube_serving.errors import InvalidRequest
from mlkube_serving.tensors import Tensor, datatype_of

_NUMERIC = "biuf"


def array_of(values: Any, what: str) -> np.ndarray[Any, Any]:
    """A rectangular numpy array from JSON values; strings and mixed values become objects."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequest(f"{what} is not a rectangular array: {exc}") from exc
    if array.dtype.kind in "US":
        array = array.astype(object)
    elif array.dtype.kind not in _NUMERIC and array.dtype.kind != "O":
        raise InvalidRequest(f"{what} has unsupported values")
    return array


def reorder_columns(
    array: np.ndarray[Any, Any], names: Sequence[str] | None, feature_names: Sequence[str] | None
) -> np.ndarray[Any, Any]:
    """Put columns named `names` into the model's `feature_names` order when both are known."""
    if not names or not feature_names or list(names) == list(feature_names):
        return array
    if array.ndim != 2 or sorted(names) != sorted(feature_names) or len(names) != array.shape[1]:
        return array
    position = {name: i for i, name in enumerate(names)}
    return array[:, [position[name] for name in feature_names]]


def records_to_array(
    records: list[dict[str, Any]], feature_names: Sequence[str] | None
) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Rows given as objects -> a 2-D array and its column names."""
    keys = list(records[0])
    if feature_names is not None and sorted(keys) == sorted(feature_names):
        keys = list(feature_names)
    try:
        rows = [[record[key] for key in keys] for record in records]
    except KeyError as exc:
        raise InvalidRequest(f"record is missing field {exc.args[0]!r}") from exc
    except TypeError as exc:
        raise InvalidRequest("every record must be an object") from exc
    return array_of(rows, "records"), keys


def rows_to_inputs(
    rows: Any, feature_names: Sequence[str] | None, names: Sequence[str] | None = None
) -> list[Tensor]:
    """Rows (lists or objects) -> one input tensor named `input-0`."""
    if not isinstance(rows, list) or not rows:
        raise InvalidRequest("expected a non-empty list of rows")
    if isinstance(rows[0], dict):
        array, names = records_to_array(rows, feature_names)
    else:
        array = reorder_columns(array_of(rows, "rows"), names, feature_names)
    parameters = {"feature_names": list(names)} if names else None
    return [Tensor("input-0", array, datatype_of(array), parameters)]


def columns_to_inputs(columns: dict[str, Any]) -> list[Tensor]:
    """Columnar payload {name: values} -> one tensor per column."""
    if not columns:
        raise InvalidRequest("expected at least one column")
    tensors = []
    for name, values in columns.items():
        array = array_of(values, f"column {name!r}")
        tensors.append(Tensor(name, array, datatype_of(array)))
    return tensors


def jsonable(array: np.ndarray[Any, Any]) -> Any:
    """Something orjson (with OPT_SERIALIZE_NUMPY) writes as nested JSON lists."""
    if array.dtype.kind in _NUMERIC:
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)
    return _decode(array.tolist())


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _fallback(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _decode(value.tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def dumps(value: Any) -> bytes:
    """orjson with numpy support and a fallback for object arrays, bytes and odd values."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_fallback)
