"""The router's gRPC side, as processes: a real router in front of two real model servers
(blue, green) speaking the Open Inference Protocol over gRPC. The live split, the
x-mlkube-deployment metadata, mirroring and key auth work as they do over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc

from mlkube.devcluster.procs import free_port
from support.serving import ServerProcess, build_forest, make_data
from support.waiting import wait_for

HEADER = "x-mlkube-deployment"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[ServerProcess, int]]]:
    model = build_forest(tmp_path_factory.mktemp("forest"))
    started: dict[str, tuple[ServerProcess, int]] = {}
    try:
        for name in ("blue", "green"):
            port = free_port()
            server = ServerProcess(model, name="forest", extra_args=["--grpc-port", str(port)])
            started[name] = (server, port)
        for server, _ in started.values():
            server.wait_ready()
        yield started
    finally:
        for server, _ in started.values():
            server.stop()


def config(servers: dict[str, tuple[ServerProcess, int]], **extra: Any) -> dict[str, Any]:
    deployments = {
        name: {"url": server.url, "grpcPort": grpc_port}
        for name, (server, grpc_port) in servers.items()
    }
    return {"version": 1, "endpoint": "credit", "deployments": deployments, **extra}


def grpc_count(server: ServerProcess) -> float:
    total = 0.0
    for line in requests.get(server.metrics_url, timeout=5).text.splitlines():
        if line.startswith("mlkube_requests_total{") and 'protocol="grpc"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def infer_request() -> Any:
    X, _ = make_data()
    request = service_pb2.ModelInferRequest(model_name="forest")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[1, 20])
    tensor.contents.fp64_contents.extend(X[0].tolist())
    return request


def served_by(stub: Any, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    _, call = stub.ModelInfer.with_call(infer_request(), metadata=metadata, timeout=10)
    return dict(call.initial_metadata())[HEADER]


def test_split_target_and_mirror_over_grpc(
    servers: dict[str, tuple[ServerProcess, int]], start_router: Callable[..., Any]
) -> None:
    grpc_port = free_port()
    doc = config(servers, traffic={"blue": 100, "green": 0}, mirror={"green": 100})
    start_router(doc, extra_args=("--grpc-port", str(grpc_port)))
    green = servers["green"][0]
    before = grpc_count(green)
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert {served_by(stub) for _ in range(10)} == {"blue"}
        assert served_by(stub, ((HEADER, "green"),)) == "green"
        with pytest.raises(grpc.RpcError) as unknown:
            stub.ModelInfer(infer_request(), metadata=((HEADER, "red"),), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert "deployment 'red' does not exist in endpoint 'credit'" in unknown.value.details()
        with pytest.raises(grpc.RpcError) as refused:  # the server's own error, passed on
            stub.ModelInfer(service_pb2.ModelInferRequest(model_name="nope"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    # Ten live calls mirrored to green, plus the one targeted at it.
    wait_for(lambda: grpc_count(green) - before >= 11, 10, what="mirror copies at green")
    # And tritonclient through the router gets the server's answer.
    client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    X, _ = make_data()
    tensor = triton.InferInput("input-0", [3, 20], "FP64")
    tensor.set_data_from_numpy(X[:3])
    direct = triton.InferenceServerClient(f"127.0.0.1:{servers['blue'][1]}")
    assert np.array_equal(client.infer("forest", [tensor]).as_numpy("predict"),
                          direct.infer("forest", [tensor]).as_numpy("predict"))  # fmt: skip


def test_key_auth_over_grpc(
    servers: dict[str, tuple[ServerProcess, int]], start_router: Callable[..., Any], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("s3cret\n")
    grpc_port = free_port()
    doc = config(servers, traffic={"blue": 100}, auth={"mode": "key", "keysFile": str(keys)})
    start_router(doc, extra_args=("--grpc-port", str(grpc_port)))
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            stub.ModelInfer(infer_request(), timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "missing key" in missing.value.details()
        with pytest.raises(grpc.RpcError) as wrong:
            stub.ModelInfer(infer_request(), metadata=(("authorization", "Bearer nope"),))
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert served_by(stub, (("authorization", "Bearer s3cret"),)) == "blue"
        assert served_by(stub, (("api-key", "s3cret"),)) == "blue"
