"""KServe V1 protocol: `GET /v1/models/{m}` and `POST /v1/models/{m}:predict`.

`instances` is a list of rows (or records); `inputs` is the same or TensorFlow's columnar
object of named columns. Both answer with `predictions`, like KServe's model servers.
"""

from __future__ import annotations

import orjson

from mlkube_serving.errors import InvalidRequest
from mlkube_serving.protocols import Call, Reply
from mlkube_serving.protocols.rows import columns_to_inputs, dumps, jsonable, rows_to_inputs
from mlkube_serving.protocols.v2 import load_json
from mlkube_serving.tensors import InferenceRequest, Tensor


def list_models(call: Call) -> Reply:
    return Reply(200, orjson.dumps({"models": [e.name for e in call.dataplane.models]}))


def model_status(call: Call) -> Reply:
    assert call.model is not None
    ready = call.dataplane.model_ready(call.model)
    return Reply(200 if ready else 503, orjson.dumps({"name": call.model, "ready": ready}))


def decode_inputs(payload: object, feature_names: list[str] | None) -> list[Tensor]:
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
    if "instances" in payload:
        return rows_to_inputs(payload["instances"], feature_names)
    if "inputs" in payload:
        inputs = payload["inputs"]
        if isinstance(inputs, dict):
            return columns_to_inputs(inputs)
        return rows_to_inputs(inputs, feature_names)
    raise InvalidRequest("request needs 'instances' or 'inputs'")


def predict(call: Call) -> Reply:
    assert call.model is not None
    entry = call.dataplane.get(call.model)
    inputs = decode_inputs(load_json(call.body), entry.runtime.feature_names)
    response = call.dataplane.infer_entry(entry, InferenceRequest(inputs))
    return Reply(200, dumps({"predictions": jsonable(response.outputs[0].data)}))
