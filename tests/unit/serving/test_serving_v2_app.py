"""V2 Open Inference Protocol through the ASGI app: health, metadata, infer, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkube_serving.app import ServingApp
from support.serving import v2_body
from support.serving_asgi import call, make_app


@pytest.fixture(scope="module")
def app(forest_dir: Path) -> ServingApp:
    return make_app(forest_dir, name="forest", version="3")


def test_health_and_server_metadata(app: ServingApp) -> None:
    assert call(app, "GET", "/v2/health/live").json() == {"live": True}
    assert call(app, "GET", "/v2/health/ready").json() == {"ready": True}
    meta = call(app, "GET", "/v2").json()
    assert meta["name"] == "mlkube"
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("prefix", ["/v2/models/forest", "/v2/models/forest/versions/3"])
def test_model_ready_and_metadata(app: ServingApp, prefix: str) -> None:
    assert call(app, "GET", f"{prefix}/ready").json() == {"name": "forest", "ready": True}
    meta = call(app, "GET", prefix).json()
    assert meta["name"] == "forest"
    assert meta["versions"] == ["3"]
    assert meta["platform"] == "onnxruntime"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 20]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["parameters"]["framework"] == "sklearn"


@pytest.mark.parametrize("prefix", ["/v2/models/forest", "/v2/models/forest/versions/3"])
def test_infer_returns_labels_and_echoes_id(
    app: ServingApp, prefix: str, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    answer = call(app, "POST", f"{prefix}/infer", v2_body(X[:3], id="req-7"))
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["id"] == "req-7"
    assert body["model_name"] == "forest"
    assert body["model_version"] == "3"
    runtime = app.dataplane.get("forest").runtime
    expected = runtime.estimator.predict(X[:3])  # type: ignore[attr-defined]
    assert body["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [3], "data": expected.tolist()}
    ]


def test_outputs_selection_returns_only_what_was_asked(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    body = v2_body(X[:2], outputs=[{"name": "predict_proba"}])
    outputs = call(app, "POST", "/v2/models/forest/infer", body).json()["outputs"]
    assert [o["name"] for o in outputs] == ["predict_proba"]
    assert outputs[0]["shape"] == [2, 2]
    assert outputs[0]["datatype"] == "FP64"
    assert np.allclose(np.sum(np.reshape(outputs[0]["data"], (2, 2)), axis=1), 1.0)


def test_unknown_output_is_a_400_naming_the_choices(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    answer = call(
        app, "POST", "/v2/models/forest/infer", v2_body(X[:1], outputs=[{"name": "nope"}])
    )
    assert answer.status == 400
    assert "nope" in answer.json()["error"] and "predict_proba" in answer.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v2/models/other/infer", 404),
        ("GET", "/v2/models/other", 404),
        ("GET", "/v2/models/forest/versions/9", 404),
        ("POST", "/v2/models/forest/versions/9/infer", 404),
        ("GET", "/v2/models/forest/infer", 405),
        ("POST", "/v2/health/live", 405),
        ("GET", "/nothing/here", 404),
    ],
)
def test_bad_routes_answer_json_errors(
    app: ServingApp, method: str, path: str, status: int
) -> None:
    answer = call(app, method, path, b"{}")
    assert answer.status == status
    assert isinstance(answer.json()["error"], str)


def test_binary_request_and_response(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    rows = X[:4].astype(np.float32)
    header = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [4, 20],
                "datatype": "FP32",
                "parameters": {"binary_data_size": rows.nbytes},
            }
        ],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    import orjson

    head = orjson.dumps(header)
    answer = call(
        app,
        "POST",
        "/v2/models/forest/infer",
        head + rows.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert answer.status == 200, answer.body
    length = int(answer.headers["inference-header-content-length"])
    meta = orjson.loads(answer.body[:length])
    size = meta["outputs"][0]["parameters"]["binary_data_size"]
    labels = np.frombuffer(answer.body[length : length + size], dtype="<i8")
    runtime = app.dataplane.get("forest").runtime
    assert labels.tolist() == runtime.estimator.predict(rows).tolist()  # type: ignore[attr-defined]


def test_large_body_goes_through_the_thread_path(
    forest_dir: Path, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    app = make_app(forest_dir, name="forest", inline_max_bytes=100)
    answer = call(app, "POST", "/v2/models/forest/infer", v2_body(X[:50]), chunk=512)
    assert answer.status == 200
    assert answer.json()["outputs"][0]["shape"] == [50]


def test_body_over_the_limit_is_413(
    forest_dir: Path, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    app = make_app(forest_dir, name="forest", max_body_bytes=1000)
    answer = call(app, "POST", "/v2/models/forest/infer", v2_body(X[:50]))
    assert answer.status == 413
    assert "1000" in answer.json()["error"]
    chunked = call(app, "POST", "/v2/models/forest/infer", v2_body(X[:50]), chunk=300)
    assert chunked.status == 413


def test_concurrency_limit_is_429(app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]) -> None:
    X, _ = data
    app.inflight = app.settings.max_concurrency  # as if that many requests were in flight
    try:
        answer = call(app, "POST", "/v2/models/forest/infer", v2_body(X[:1]))
    finally:
        app.inflight = 0
    assert answer.status == 429
    assert "limit" in answer.json()["error"]


def test_draining_server_is_not_ready(
    forest_dir: Path, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    app = make_app(forest_dir, name="forest")
    app.dataplane.draining = True
    assert call(app, "GET", "/v2/health/ready").status == 503
    assert call(app, "GET", "/v2/models/forest/ready").json() == {"name": "forest", "ready": False}
    X, _ = data
    assert call(app, "POST", "/v2/models/forest/infer", v2_body(X[:1])).status == 503


def test_a_client_gone_mid_body_gets_no_inference_and_no_400(logistic_dir: Path) -> None:
    """A disconnect before the body is complete runs nothing and is counted as 499."""
    import asyncio

    from mlkube_serving import metrics

    app = make_app(logistic_dir, name="gone")
    messages = [{"type": "http.request", "body": b'{"inputs": [', "more_body": True},
                {"type": "http.disconnect"}]  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/models/gone/infer",
             "headers": [(b"content-length", b"1000")]}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent == []
    text = metrics.render().decode()
    assert 'mlkube_requests_total{model="gone",protocol="v2",status="499"} 1.0' in text
    assert 'model="gone",protocol="v2",status="400"' not in text
