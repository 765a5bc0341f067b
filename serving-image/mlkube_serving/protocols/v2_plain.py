"""The commonest V2 request without the general decoder: one FP64 JSON tensor of rows x
features into a tabular runtime, its default output back.

Why: in a busy server the general path (a `Call`, a `Tensor`, an `InferenceRequest`, the
decoder's checks for binary data, several inputs, requested outputs and parameters, the
runtime's feature-matrix and output checks) costs about a third of a one-row request. This
path only recognises a body of exactly that shape and answers with the bytes `v2.infer` would.
Anything else (other keys or datatypes, binary data, a model not ready, any exception) returns
None and the general path answers it, its errors included; the hypothesis test in
tests/unit/serving/test_serving_v2_plain.py compares the two paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from mlkube_serving.drift_lane import BODIES_BUDGET, BODIES_FULL, SAMPLE_BYTES
from mlkube_serving.protocols import Reply
from mlkube_serving.protocols.v2 import HEADER_LENGTH, _json_data
from mlkube_serving.tensors import Tensor

if TYPE_CHECKING:
    from mlkube_serving.dataplane import DataPlane

_BINARY_HEADER = HEADER_LENGTH.encode()
_INPUT_KEYS = 4  # name, shape, datatype, data: a "parameters" key goes the general way
_ONE_ROW = (1,)
_LABEL_KINDS = "biuSU"  # bool, integer and text labels: a classifier's few distinct answers
ANSWERS_KEPT = 1024  # distinct encoded answers remembered; past it the memo starts afresh
_answers: dict[tuple[Any, ...], bytes] = {}


def infer_plain(
    dataplane: DataPlane,
    model: str,
    version: str | None,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> Reply | None:
    """The answer `v2.infer` would give, or None when the request is not the plain case."""
    entry = dataplane.plain_entry(model, version)
    if entry is None:
        return None
    runtime = entry.runtime
    predict = runtime.plain_predict
    if predict is None:  # plain_entry checked it; this tells the type checker
        return None
    for header, _ in headers:
        if header == _BINARY_HEADER:
            return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(payload) is not dict:
        return None
    request_id = payload.get("id")
    if len(payload) != (1 if request_id is None else 2) or (
        request_id is not None and type(request_id) is not str
    ):
        return None
    inputs = payload.get("inputs")
    if type(inputs) is not list or len(inputs) != 1:
        return None
    raw = inputs[0]
    if type(raw) is not dict or len(raw) != _INPUT_KEYS or raw.get("datatype") != "FP64":
        return None
    name = raw.get("name")
    shape = raw.get("shape")
    if type(name) is not str or type(shape) is not list or len(shape) != 2:
        return None
    rows, width = shape
    if type(rows) is not int or type(width) is not int or rows < 1 or width != runtime.n_features:
        return None
    try:
        features = np.asarray(raw["data"], dtype=np.float64)
        if features.shape != (rows, width):
            if features.size != rows * width:
                return None
            features = features.reshape(rows, width)
        outputs = predict(features)
    except Exception:  # the general path runs it again and answers the error
        return None
    reply = _answer(entry.name, entry.version, request_id, outputs)
    sink = dataplane.sink
    if sink is not None and (sink.rate >= 1.0 or sink.coin() < sink.rate):
        # `DriftHook.offer_plain`'s common case inline: a Python call with five arguments
        # and its checks were a third of what a sample cost a loaded server at 100%
        # (docs/benchmarks/drift-overhead.md, tenth pass). The rate is 1 behind a gate.
        lane = sink.bodies
        if lane is not None and lane.names is runtime.feature_names and lane.model == entry.name:
            items = lane.items
            size = len(body) + len(reply)
            held = lane.held + size
            if size <= SAMPLE_BYTES and held <= BODIES_BUDGET and len(items) < lane.limit:
                items.append(body)
                items.append(reply)
                lane.held = held
                if held > BODIES_FULL or len(items) >= lane.limit:
                    lane.wake.set()  # full: the sender sends it
                return Reply(200, reply)
        keep = getattr(sink, "offer_plain", None)
        if keep is None or not keep(entry.name, runtime.feature_names, width, body, reply):
            _offer(sink, entry.name, runtime.feature_names, name, features, outputs, width)
    return Reply(200, reply)


def _offer(
    sink: Any, model: str, names: list[str] | None, name: str, features: np.ndarray[Any, Any],
    outputs: list[Tensor], width: int,
) -> None:  # fmt: skip
    """A sample the body lane did not take, by its rows (`offer_rows`) or as a tensor."""
    by_rows = getattr(sink, "offer_rows", None)
    if by_rows is not None:
        by_rows(model, names, name, features, outputs, width)
    else:
        sink.offer(model, names, [Tensor(name, features, "FP64")], outputs, width)


def _answer(
    model: str, version: str | None, request_id: str | None, outputs: list[Tensor]
) -> bytes:
    """`_encode`, remembered for a one-row label without an id: a classifier answers with a
    handful of distinct byte strings, so most requests encode nothing (the encoding was a
    tenth of this path's time). Keyed by everything `_encode` reads; floats are never kept
    (a regressor's answers hardly repeat)."""
    if request_id is None and len(outputs) == 1:
        tensor = outputs[0]
        data = tensor.data
        if data.shape == _ONE_ROW and data.dtype.kind in _LABEL_KINDS:
            key = (model, version, tensor.name, tensor.datatype, data.dtype, data.item())
            found = _answers.get(key)
            if found is None:
                found = _encode(model, version, None, outputs)
                if len(_answers) >= ANSWERS_KEPT:
                    _answers.clear()
                _answers[key] = found
            return found
    return _encode(model, version, request_id, outputs)


def _encode(
    model: str, version: str | None, request_id: str | None, outputs: list[Tensor]
) -> bytes:
    """`encode_response` without binary outputs or parameters: the same keys, same order."""
    body: dict[str, Any] = {
        "model_name": model,
        "outputs": [
            {
                "name": t.name,
                "datatype": t.datatype,
                "shape": t.data.shape,
                "data": _json_data(t.data),
            }
            for t in outputs
        ],
    }
    if version is not None:
        body["model_version"] = version
    if request_id is not None:
        body["id"] = request_id
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
