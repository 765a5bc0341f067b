"""The model server as a real process: V2 (also via tritonclient), V1, Seldon, metrics."""

from __future__ import annotations

import numpy as np
import requests
import tritonclient.http as triton

from support.serving import ServerProcess, make_data, v2_body


def test_v2_over_http(forest_server: ServerProcess) -> None:
    X, _ = make_data()
    url = forest_server.url
    assert requests.get(f"{url}/v2/health/live", timeout=5).json() == {"live": True}
    meta = requests.get(f"{url}/v2/models/forest/versions/2", timeout=5).json()
    assert meta["platform"] == "onnxruntime"
    answer = requests.post(f"{url}/v2/models/forest/infer", json=v2_body(X[:3], id="a1"), timeout=5)
    assert answer.status_code == 200
    assert answer.json()["id"] == "a1"
    assert answer.json()["outputs"][0]["shape"] == [3]


def test_tritonclient_binary_and_json(forest_server: ServerProcess) -> None:
    X, _ = make_data()
    client = triton.InferenceServerClient(url=forest_server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("forest", "2")
    assert client.get_model_metadata("forest")["name"] == "forest"
    rows = X[:5].astype(np.float32)
    labels = {}
    for binary in (True, False):
        tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("predict", binary_data=binary),
            triton.InferRequestedOutput("predict_proba", binary_data=binary),
        ]
        result = client.infer("forest", [tensor], model_version="2", outputs=outputs)
        labels[binary] = result.as_numpy("predict")
        proba = result.as_numpy("predict_proba")
        assert proba.shape == (5, 2)
        assert np.allclose(proba.sum(axis=1), 1.0)
    assert labels[True].tolist() == labels[False].tolist()
    # No outputs named: the client asks for every output in binary (binary_data_output).
    tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    result = client.infer("forest", [tensor])
    assert result.as_numpy("predict").tolist() == labels[True].tolist()


def test_v1_and_seldon_over_http(forest_server: ServerProcess) -> None:
    X, _ = make_data()
    url = forest_server.url
    v1 = requests.post(
        f"{url}/v1/models/forest:predict", json={"instances": X[:2].tolist()}, timeout=5
    )
    assert v1.status_code == 200 and len(v1.json()["predictions"]) == 2
    seldon = requests.post(
        f"{url}/api/v1.0/predictions", json={"data": {"ndarray": X[:2].tolist()}}, timeout=5
    )
    assert seldon.status_code == 200
    assert np.array(seldon.json()["data"]["ndarray"]).shape == (2, 2)


def test_client_errors_over_http(forest_server: ServerProcess) -> None:
    url = forest_server.url
    bad = requests.post(f"{url}/v2/models/forest/infer", data=b"{nope", timeout=5)
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    missing = requests.post(f"{url}/v2/models/other/infer", json={}, timeout=5)
    assert missing.status_code == 404 and "other" in missing.json()["error"]
    huge = requests.post(f"{url}/v2/models/forest/infer", data=b"1" * (33 * 2**20), timeout=30)
    assert huge.status_code == 413
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200


def test_metrics_port_merges_workers(forest_server: ServerProcess) -> None:
    X, _ = make_data()
    session = requests.Session()
    for _ in range(20):  # new connections spread over both workers
        requests.post(f"{forest_server.url}/v2/models/forest/infer", json=v2_body(X[:1]), timeout=5)
    for _ in range(20):
        session.post(f"{forest_server.url}/v2/models/forest/infer", json=v2_body(X[:1]), timeout=5)
    text = requests.get(forest_server.metrics_url, timeout=5).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlkube_")
    }
    ok = samples['mlkube_requests_total{model="forest",protocol="v2",status="200"}']
    assert ok >= 40
    assert samples['mlkube_request_duration_seconds_count{model="forest",protocol="v2"}'] >= 40
    info = 'mlkube_model_runtime_info{framework="sklearn",model="forest",runtime="onnxruntime"}'
    assert samples[info] == 1.0
    assert samples['mlkube_model_load_seconds{model="forest"}'] > 0
    # the metrics port is not the API port
    assert requests.get(f"{forest_server.url}/metrics", timeout=5).status_code == 404
