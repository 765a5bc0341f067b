"""Property tests: nothing a client sends makes the server answer 5xx or crash.

The ASGI app runs in-process; every answer must be 2xx or 4xx, 4xx answers must be
`{"error": "<reason>"}`, and the server must still serve a valid request afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlkube_serving.app import ServingApp
from mlkube_serving.tensors import DATATYPES
from support.serving import v2_body
from support.serving_asgi import Answer, call, make_app

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INFER_PATHS = [
    "/v2/models/m/infer",
    "/v2/models/m/versions/1/infer",
    "/v1/models/m:predict",
    "/api/v1.0/predictions",
    "/score",
]

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=5),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
shapes = st.lists(st.integers(0, 6), max_size=3)
datatypes = st.sampled_from([*DATATYPES, "FP99", "", "fp32"])


@pytest.fixture(scope="module", params=["accelerated", "sklearn", "onnx"])
def app(
    request: pytest.FixtureRequest, forest_dir: Path, logistic_dir: Path, onnx_dir: Path
) -> ServingApp:
    if request.param == "onnx":
        return make_app(onnx_dir, version="1", max_body_bytes=64 * 1024)
    if request.param == "sklearn":
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLKUBE_ONNX_ACCELERATION", "0")
            served = make_app(logistic_dir, version="1", max_body_bytes=64 * 1024)
        assert served.dataplane.get("m").runtime.active_runtime == "sklearn"
        return served
    return make_app(forest_dir, version="1", max_body_bytes=64 * 1024)


def assert_client_safe(answer: Answer) -> None:
    assert answer.status < 500, answer.body
    if answer.status >= 400:
        error = orjson.loads(answer.body)["error"]
        assert isinstance(error, str) and error


def assert_still_serving(app: ServingApp) -> None:
    body = v2_body(np.zeros((1, 20)))
    assert call(app, "POST", "/v2/models/m/infer", body).status == 200


@SETTINGS
@given(path=st.sampled_from(INFER_PATHS), body=st.binary(max_size=300))
def test_arbitrary_bytes(app: ServingApp, path: str, body: bytes) -> None:
    assert_client_safe(call(app, "POST", path, body))


@SETTINGS
@given(path=st.sampled_from(INFER_PATHS), value=json_values)
def test_arbitrary_json(app: ServingApp, path: str, value: Any) -> None:
    assert_client_safe(call(app, "POST", path, orjson.dumps(value)))


@st.composite
def v2_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Half near-valid (20 numeric columns, maybe off by one), half anything goes."""
    numbers = st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-300, 300) | st.booleans()
    if draw(st.booleans()):
        rows, width = draw(st.integers(0, 4)), draw(st.sampled_from([19, 20, 20, 20, 21]))
        shape = draw(st.sampled_from([[rows, width], [rows * width], [1, rows, width]]))
        datatype = draw(st.sampled_from([*DATATYPES]))
        count = rows * width
    else:
        shape = draw(shapes)
        datatype = draw(datatypes)
        count = int(np.prod(shape)) if shape else 1
    good = st.lists(numbers, min_size=count, max_size=count)
    text = st.lists(st.text(max_size=3), min_size=count, max_size=count)
    data = draw(st.one_of(good, good, good, text, json_values))
    name = draw(st.sampled_from(["input-0", "x"]))
    tensor = {"name": name, "shape": shape, "datatype": datatype, "data": data}
    body: dict[str, Any] = {"inputs": [tensor] * draw(st.sampled_from([1, 1, 1, 2]))}
    if draw(st.booleans()):
        names = st.sampled_from(["predict", "predict_proba", "predict", "label", "zz"])
        body["outputs"] = [{"name": draw(names)}]
    if draw(st.booleans()):
        body["id"] = draw(st.one_of(st.text(max_size=8), st.text(max_size=8), json_scalars))
    return body


@SETTINGS
@given(body=v2_requests())
def test_structured_v2_requests(app: ServingApp, body: dict[str, Any]) -> None:
    answer = call(app, "POST", "/v2/models/m/infer", orjson.dumps(body))
    assert_client_safe(answer)
    event(f"status {answer.status}")
    if answer.status == 200 and isinstance(body.get("id"), str):
        assert orjson.loads(answer.body)["id"] == body["id"]


@SETTINGS
@given(
    rows=st.integers(1, 8),
    datatype=st.sampled_from(["FP32", "FP64", "INT32", "INT64", "FP16"]),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1.0, 10.0, 1000.0]),
)
def test_valid_requests_succeed_and_match_the_model(
    app: ServingApp, rows: int, datatype: str, seed: int, scale: float
) -> None:
    X = (np.random.default_rng(seed).normal(size=(rows, 20)) * scale).astype(DATATYPES[datatype])
    tensor = {"name": "input-0", "shape": [rows, 20], "datatype": datatype, "data": X.tolist()}
    answer = call(app, "POST", "/v2/models/m/infer", orjson.dumps({"inputs": [tensor]}))
    assert answer.status == 200, answer.body
    output = orjson.loads(answer.body)["outputs"][0]
    assert output["shape"] == [rows]
    runtime = app.dataplane.get("m").runtime
    estimator = getattr(runtime, "estimator", None)
    if estimator is not None:
        assert output["data"] == estimator.predict(X.astype(np.float32)).tolist()


@SETTINGS
@given(
    rows=st.integers(0, 4),
    width=st.integers(0, 25),
    declared=st.integers(-5, 5),
    header=st.integers(-3, 400),
    datatype=st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL"]),
)
def test_binary_payloads(
    app: ServingApp, rows: int, width: int, declared: int, header: int, datatype: str
) -> None:
    array = np.ones((rows, width), dtype=DATATYPES[datatype] if datatype != "BYTES" else "f4")
    raw = array.tobytes()
    tensor = {
        "name": "input-0",
        "shape": [rows, width],
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw) + declared},
    }
    head = orjson.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
    length = len(head) if header == 0 else header
    answer = call(
        app,
        "POST",
        "/v2/models/m/infer",
        head + raw,
        headers={"Inference-Header-Content-Length": str(length)},
    )
    assert_client_safe(answer)


@SETTINGS
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.text(alphabet="/abcv12.:-_", max_size=30).map(lambda p: "/" + p),
)
def test_arbitrary_routes(app: ServingApp, method: str, path: str) -> None:
    assert_client_safe(call(app, method, path, b"{}"))


def test_huge_and_chunked_bodies_are_413_and_the_server_keeps_serving(app: ServingApp) -> None:
    big = b"[" + b"1," * 100_000 + b"1]"
    assert call(app, "POST", "/v2/models/m/infer", big).status == 413
    assert call(app, "POST", "/v2/models/m/infer", big, chunk=4096).status == 413
    assert_still_serving(app)
