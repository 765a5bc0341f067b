"""The Open Inference Protocol over gRPC, against a real server process (two workers sharing
the port) with real clients: tritonclient.grpc, and the protocol's generated stubs (the ones
tritonclient ships) for what tritonclient never sends (typed `contents`, bad requests)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc

from mlkube.devcluster.procs import free_port
from support.serving import ServerProcess, make_data, v2_body


@pytest.fixture(scope="module")
def grpc_server(forest_model: Path) -> Iterator[tuple[ServerProcess, str]]:
    port = free_port()
    server = ServerProcess(forest_model, name="forest", workers=2,
                           extra_args=["--version", "2", "--grpc-port", str(port)])  # fmt: skip
    try:
        server.wait_ready()
        yield server, f"127.0.0.1:{port}"
    finally:
        code = server.stop()
    assert code == 0, server.output()


def http_answer(
    server: ServerProcess, rows: np.ndarray, outputs: list[str] | None = None
) -> dict[str, np.ndarray]:
    extra = {"outputs": [{"name": n} for n in outputs]} if outputs else {}
    url = f"{server.url}/v2/models/forest/infer"
    body = requests.post(url, json=v2_body(rows, **extra), timeout=5)
    assert body.status_code == 200, body.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in body.json()["outputs"]}


def test_tritonclient_sees_a_live_ready_model_with_metadata(
    grpc_server: tuple[ServerProcess, str],
) -> None:
    _, address = grpc_server
    client = triton.InferenceServerClient(address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("forest") and client.is_model_ready("forest", "2")
    assert not _ready_or_missing(client, "nope")
    meta = client.get_model_metadata("forest")
    assert meta.name == "forest" and list(meta.versions) == ["2"]
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [("input-0", "FP64",
                                                                            [-1, 20])]  # fmt: skip
    assert {o.name for o in meta.outputs} == {"predict", "predict_proba"}
    server_meta = client.get_server_metadata()
    assert server_meta.name == "mlkube"


def _ready_or_missing(client: triton.InferenceServerClient, name: str) -> bool:
    try:
        return bool(client.is_model_ready(name))
    except triton.InferenceServerException as exc:
        assert "not found" in str(exc)
        return False


def test_tritonclient_infers_the_same_as_http(grpc_server: tuple[ServerProcess, str]) -> None:
    server, address = grpc_server
    client = triton.InferenceServerClient(address)
    X, _ = make_data()
    rows = X[:7]
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)  # raw_input_contents
    result = client.infer("forest", [tensor], model_version="2", request_id="r-7")
    expected = http_answer(server, rows)
    assert result.get_response().id == "r-7"
    assert np.array_equal(result.as_numpy("predict"), expected["predict"])
    assert [o.name for o in result.get_response().outputs] == list(expected)
    proba = client.infer("forest", [tensor],
                         outputs=[triton.InferRequestedOutput("predict_proba")])  # fmt: skip
    assert [o.name for o in proba.get_response().outputs] == ["predict_proba"]
    wanted = http_answer(server, rows, ["predict_proba"])["predict_proba"]
    assert np.allclose(proba.as_numpy("predict_proba"), wanted)


def test_typed_contents_and_bad_requests_over_the_stubs(
    grpc_server: tuple[ServerProcess, str],
) -> None:
    server, address = grpc_server
    X, _ = make_data()
    rows = X[:3]
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="forest")
        tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
        tensor.contents.fp64_contents.extend(rows.reshape(-1).tolist())
        answer = stub.ModelInfer(request)
        predict = answer.outputs[0]
        got = np.frombuffer(answer.raw_output_contents[0], "<i8").reshape(list(predict.shape))
        assert predict.name == "predict" and np.array_equal(
            got, http_answer(server, rows)["predict"]
        )
        bad = service_pb2.ModelInferRequest(model_name="forest")
        bad.inputs.add(
            name="input-0", datatype="FP64", shape=[2, 20]
        ).contents.fp64_contents.extend([1.0] * 3)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "3 values do not fill shape [2, 20]" in refused.value.details()
        with pytest.raises(grpc.RpcError) as missing:
            stub.ModelInfer(service_pb2.ModelInferRequest(model_name="nope", inputs=[tensor]))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert "model 'nope' not found" in missing.value.details()
        raw = service_pb2.ModelInferRequest(model_name="forest", raw_input_contents=[b"x" * 8])
        raw.inputs.add(name="input-0", datatype="FP64", shape=[1, 20])
        with pytest.raises(grpc.RpcError) as short:
            stub.ModelInfer(raw)
        assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "8 raw bytes for shape [1, 20] of FP64" in short.value.details()
    metrics = requests.get(server.metrics_url, timeout=5).text
    assert 'protocol="grpc",status="200"' in metrics and 'protocol="grpc",status="400"' in metrics


KSERVE_CLIENT = Path(__file__).with_name("kserve_grpc_client.py")


def test_the_kserve_sdks_grpc_client_gets_the_same_answers(
    grpc_server: tuple[ServerProcess, str],
) -> None:
    python = os.environ.get("MLKUBE_KSERVE_PYTHON")
    assert python, "MLKUBE_KSERVE_PYTHON is unset: run hack/kserve-sdk/build.sh (hack/test does)"
    server, address = grpc_server
    X, _ = make_data()
    rows = X[10:14]
    argv = [python, str(KSERVE_CLIENT), address, "forest", json.dumps(rows.tolist())]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["live"] and got["ready"] and got["model_ready"]
    assert (got["id"], got["model"], got["output"]) == ("kserve-1", "forest", "predict")
    assert got["data"] == http_answer(server, rows)["predict"].reshape(-1).tolist()


def test_large_grpc_requests_run_in_the_thread_within_the_byte_budget(forest_model: Path) -> None:
    """Past the inline size a request is decoded and run in the inference thread, its bytes
    held in the queued-bytes budget: one that does not fit is refused with the reason."""
    port = free_port()
    env = {"MLKUBE_INLINE_MAX_BYTES": "64", "MLKUBE_MAX_QUEUED_BYTES": "1000"}
    server = ServerProcess(forest_model, name="forest", env=env,
                           extra_args=["--grpc-port", str(port)])  # fmt: skip
    X, _ = make_data()
    try:
        server.wait_ready()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

            def ask(rows: np.ndarray) -> Any:
                request = service_pb2.ModelInferRequest(model_name="forest")
                tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
                tensor.contents.fp64_contents.extend(rows.reshape(-1).tolist())
                return stub.ModelInfer(request, timeout=10)

            answer = ask(X[:1])  # ~190 bytes: over the inline size, within the budget
            got = np.frombuffer(answer.raw_output_contents[0], "<i8").tolist()
            assert got == http_answer(server, X[:1])["predict"].reshape(-1).tolist()
            with pytest.raises(grpc.RpcError) as refused:
                ask(X[:10])  # ~1,700 bytes: more than the whole budget
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "MLKUBE_MAX_QUEUED_BYTES" in refused.value.details()
    finally:
        code = server.stop()
    assert code == 0, server.output()
