"""Protocol-neutral tensors and requests shared by the dataplane, runtimes and HTTP adapters.

Every protocol (V2, KServe V1, Seldon, Azure ML) decodes into these plain dataclasses over numpy
arrays, so runtimes see one shape of input and never know which protocol a request used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlkube_serving.errors import InvalidRequest

# V2 Open Inference Protocol datatypes and their numpy dtypes; BYTES is an object array of bytes.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_DTYPE_TO_DATATYPE = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}


@dataclass(slots=True)
class Tensor:
    """A named n-dimensional array with its V2 datatype."""

    name: str
    data: np.ndarray[Any, Any]
    datatype: str
    parameters: dict[str, Any] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


@dataclass(slots=True)
class InferenceRequest:
    """One inference call: inputs, which outputs to return, and an optional id to echo."""

    inputs: list[Tensor]
    id: str | None = None
    outputs: list[str] | None = None
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class InferenceResponse:
    """The result of one inference call."""

    model_name: str
    model_version: str | None
    outputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Declared name, datatype and shape (-1 for a variable dimension) of an input or output."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def datatype_of(array: np.ndarray[Any, Any]) -> str:
    """Return the V2 datatype naming a numpy array's dtype (strings and objects are BYTES)."""
    name = _DTYPE_TO_DATATYPE.get(array.dtype)
    if name is not None:
        return name
    if array.dtype.kind in "OUS":
        return "BYTES"
    raise InvalidRequest(f"unsupported dtype {array.dtype}")


def array_json(array: np.ndarray[Any, Any] | None) -> dict[str, Any] | None:
    """An array as JSON, values and dtype (a float's repr round-trips exactly); None stays."""
    return None if array is None else {"values": array.tolist(), "dtype": array.dtype.str}


def array_from_json(raw: dict[str, Any] | None) -> np.ndarray[Any, Any] | None:
    """The array `array_json` wrote (C order)."""
    return None if raw is None else np.asarray(raw["values"], dtype=np.dtype(raw["dtype"]))


def make_tensor(name: str, data: Any) -> Tensor:
    """Wrap any array-like as a Tensor, inferring its datatype."""
    array = np.asarray(data)
    if array.dtype.kind == "U":
        array = array.astype(object)
    return Tensor(name, array, datatype_of(array))


def to_feature_matrix(
    inputs: Sequence[Tensor],
    n_features: int | None = None,
    feature_names: Sequence[str] | None = None,
) -> np.ndarray[Any, Any]:
    """Turn request inputs into one 2-D (rows x features) matrix for tabular models.

    One 2-D input is used as is; one 1-D input is a single row when its length matches the
    model's feature count and a column otherwise; several inputs are columns, ordered by the
    model's feature names when the names match them and by request order otherwise.
    """
    if not inputs:
        raise InvalidRequest("request has no inputs")
    if len(inputs) == 1:
        data = inputs[0].data
        if data.ndim == 2:
            return data
        if data.ndim == 1:
            if n_features is not None and n_features > 1 and data.shape[0] == n_features:
                return data.reshape(1, -1)
            return data.reshape(-1, 1)
        if data.ndim == 0:
            return data.reshape(1, 1)
        raise InvalidRequest(
            f"input {inputs[0].name!r} has {data.ndim} dimensions; tabular models take 1 or 2"
        )
    ordered = list(inputs)
    if feature_names is not None and sorted(t.name for t in inputs) == sorted(feature_names):
        position = {name: i for i, name in enumerate(feature_names)}
        ordered.sort(key=lambda t: position[t.name])
    rows = ordered[0].data.shape[0] if ordered[0].data.ndim else 1
    columns = []
    for tensor in ordered:
        data = tensor.data
        if data.ndim not in (1, 2) or data.shape[0] != rows:
            raise InvalidRequest(
                f"input {tensor.name!r} has shape {list(data.shape)}; "
                f"with several inputs each must be a column of {rows} rows"
            )
        columns.append(data.reshape(rows, 1) if data.ndim == 1 else data)
    return np.hstack(columns)


def column_names(inputs: Sequence[Tensor], feature_names: Sequence[str] | None) -> list[str] | None:
    """Names of the matrix columns built by `to_feature_matrix`, when they are known."""
    if len(inputs) > 1:
        names = [t.name for t in inputs]
        if feature_names is not None and sorted(names) == sorted(feature_names):
            return list(feature_names)
        return names
    return list(feature_names) if feature_names is not None else None
