"""Azure ML online-endpoint protocol: `POST /score`.

A scoring-script model gets the raw body, exactly as on Azure ML. Other models accept the two
bodies Azure ML documents: `{"data": [[...]]}` and the MLflow `{"input_data": {"columns",
"data"}}` split format; both answer with the list of predictions.
"""

from __future__ import annotations

from typing import Any

from mlkube_serving.errors import InvalidRequest, ModelNotReady
from mlkube_serving.protocols import Call, Reply
from mlkube_serving.protocols.rows import dumps, jsonable, rows_to_inputs
from mlkube_serving.protocols.v2 import load_json
from mlkube_serving.runtimes.scoring_script import ScoringScriptRuntime
from mlkube_serving.tensors import InferenceRequest, Tensor


def _inputs(payload: Any, feature_names: list[str] | None) -> list[Tensor]:
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
    if "input_data" in payload:
        split = payload["input_data"]
        if not isinstance(split, dict) or "data" not in split:
            raise InvalidRequest("input_data needs 'data' (and optionally 'columns')")
        columns = split.get("columns")
        if columns is not None and not (
            isinstance(columns, list) and all(isinstance(c, str) for c in columns)
        ):
            raise InvalidRequest("input_data.columns must be a list of strings")
        return rows_to_inputs(split["data"], feature_names, columns)
    if "data" in payload:
        return rows_to_inputs(payload["data"], feature_names)
    raise InvalidRequest("request needs 'data' or 'input_data'")


def score(call: Call) -> Reply:
    entry = call.dataplane.default_model()
    call.model = entry.name
    runtime = entry.runtime
    if isinstance(runtime, ScoringScriptRuntime):
        if not entry.ready or call.dataplane.draining:
            raise ModelNotReady(f"model {entry.name!r} is not ready")
        try:
            raw = call.body.decode()
        except UnicodeDecodeError as exc:
            raise InvalidRequest("request body is not UTF-8") from exc
        return Reply(200, dumps(runtime.run_raw(raw)))
    inputs = _inputs(load_json(call.body), runtime.feature_names)
    response = call.dataplane.infer_entry(entry, InferenceRequest(inputs))
    return Reply(200, dumps(jsonable(response.outputs[0].data)))
