"""Seldon Core v1 protocol: `POST /api/v1.0/predictions` with `data.ndarray` or `data.tensor`.

The answer mirrors the request's encoding (ndarray in, ndarray out), returns class
probabilities when the model has them (what Seldon's scikit-learn server does), names the
output columns `t:0..` unless the model provides `class_names`, and echoes `meta`.
"""

from __future__ import annotations

import math
from typing import Any

from mlkube_serving.errors import InvalidRequest
from mlkube_serving.protocols import Call, Reply
from mlkube_serving.protocols.rows import array_of, dumps, jsonable, rows_to_inputs
from mlkube_serving.protocols.v2 import load_json
from mlkube_serving.tensors import InferenceRequest, Tensor, datatype_of


def _tensor_input(raw: Any, names: list[str] | None) -> list[Tensor]:
    if not isinstance(raw, dict):
        raise InvalidRequest("data.tensor must be an object with 'shape' and 'values'")
    shape, values = raw.get("shape"), raw.get("values")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidRequest("data.tensor.shape must be a list of non-negative integers")
    array = array_of(values, "data.tensor.values")
    if array.ndim != 1 or array.size != math.prod(shape):
        raise InvalidRequest(f"{array.size} tensor values do not fill shape {shape}")
    array = array.reshape(shape)
    parameters = {"feature_names": names} if names else None
    return [Tensor("input-0", array, datatype_of(array), parameters)]


def _output_names(call: Call, array_ndim: int, width: int) -> list[str]:
    class_names = getattr(call.dataplane.default_model().runtime, "class_names", None)
    if class_names:
        return list(class_names)
    return [f"t:{i}" for i in range(width)] if array_ndim == 2 else []


def predict(call: Call) -> Reply:
    payload = load_json(call.body)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InvalidRequest("request needs a 'data' object")
    data = payload["data"]
    names = data.get("names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise InvalidRequest("data.names must be a list of strings")
    entry = call.dataplane.default_model()
    call.model = entry.name
    if "ndarray" in data:
        inputs = rows_to_inputs(data["ndarray"], entry.runtime.feature_names, names)
    elif "tensor" in data:
        inputs = _tensor_input(data["tensor"], names)
    else:
        raise InvalidRequest("data needs 'ndarray' or 'tensor' (strData/jsonData are not served)")
    wanted = (
        ["predict_proba"] if any(s.name == "predict_proba" for s in entry.runtime.outputs) else None
    )
    response = call.dataplane.infer_entry(entry, InferenceRequest(inputs, outputs=wanted))
    result = response.outputs[0].data
    width = result.shape[1] if result.ndim == 2 else 0
    out: dict[str, Any] = {"names": _output_names(call, result.ndim, width)}
    if "tensor" in data:
        out["tensor"] = {"shape": list(result.shape), "values": jsonable(result.reshape(-1))}
    else:
        out["ndarray"] = jsonable(result)
    meta = payload.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["requestPath"] = {entry.name: entry.runtime.active_runtime}
    return Reply(200, dumps({"data": out, "meta": meta}))
