"""Payload logging of gRPC calls from a real server process (the worker's wiring: one logger
shared by HTTP and gRPC) to a real CloudEvents receiver (the `cloudevents` SDK parses every
event); a sink that is down; and a sample rate of 0."""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import requests
from tritonclient.grpc import service_pb2, service_pb2_grpc

from mlkube import contract as c
from mlkube.devcluster.procs import free_port
from support.notify_procs import Receiver
from support.payload_events import IDENTITY, counted_drops, data_of
from support.serving import ServerProcess, make_data
from support.waiting import wait_for


def grpc_server(model: Path, env: dict[str, str]) -> tuple[ServerProcess, str]:
    port = free_port()
    server = ServerProcess(model, name="forest", env=env, extra_args=["--grpc-port", str(port)])
    return server, f"127.0.0.1:{port}"


def typed(rows: np.ndarray, **kwargs: Any) -> Any:
    request = service_pb2.ModelInferRequest(model_name="forest", **kwargs)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    tensor.contents.fp64_contents.extend(rows.reshape(-1).tolist())
    return request


def raw(rows: np.ndarray, **kwargs: Any) -> Any:
    request = service_pb2.ModelInferRequest(
        model_name="forest", raw_input_contents=[rows.astype("<f8").tobytes()], **kwargs
    )
    request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    return request


def test_grpc_calls_are_logged_as_the_http_json_pairs_of_the_same_requests(
    forest_model: Path, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path, "logs").start()
    env = {c.ENV_PAYLOAD_LOG_URL: receiver.url, c.ENV_PAYLOAD_LOG_REDACT: "ssn", **IDENTITY}
    server, address = grpc_server(forest_model, env)
    X, _ = make_data()
    rows = X[:3]
    params = {"ssn": "123-45-6789"}
    flat = {"name": "input-0", "shape": [3, 20], "datatype": "FP64",
            "data": rows.reshape(-1).tolist()}  # fmt: skip
    try:
        server.wait_ready()
        http = requests.post(f"{server.url}/v2/models/forest/infer", timeout=5,
                             json={"id": "h", "parameters": params, "inputs": [flat]})  # fmt: skip
        assert http.status_code == 200, http.text
        with grpc.insecure_channel(address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            for request in (raw(rows, id="h"), typed(rows, id="h")):
                request.parameters["ssn"].string_param = params["ssn"]
                answer = stub.ModelInfer(request, timeout=10)
                assert answer.outputs[0].name == "predict"
            bad = service_pb2.ModelInferRequest(model_name="forest")
            tensor = bad.inputs.add(name="input-0", datatype="FP64", shape=[2, 20])
            tensor.contents.fp64_contents.extend(rows[0].tolist())  # one row for two
            try:
                stub.ModelInfer(bad, timeout=10)
                raise AssertionError("a request that does not fill its shape was answered")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        got = wait_for(lambda: len(receiver.received()) >= 8 and receiver.received(), 20,
                       what="8 payload events")  # fmt: skip
    finally:
        code = server.stop()
        receiver.stop()
    assert code == 0, server.output()
    assert len(got) == 8
    pairs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for event in got:
        pairs[event["id"]][event["type"]] = event
    assert len(pairs) == 4  # one id per exchange, shared by its request and response
    by_protocol: dict[str, list[tuple[Any, Any, str]]] = defaultdict(list)
    for pair in pairs.values():
        assert set(pair) == {c.PAYLOAD_LOG_REQUEST_TYPE, c.PAYLOAD_LOG_RESPONSE_TYPE}
        req, resp = pair[c.PAYLOAD_LOG_REQUEST_TYPE], pair[c.PAYLOAD_LOG_RESPONSE_TYPE]
        protocol = req["attributes"]["protocol"]
        assert resp["attributes"]["protocol"] == protocol
        for event in (req, resp):
            attrs = event["attributes"]
            assert attrs["inferenceservicename"] == "credit" and attrs["endpoint"] == "blue"
            assert attrs["datacontenttype"] == "application/json"
        by_protocol[protocol].append((data_of(req), data_of(resp),
                                      resp["attributes"]["statuscode"]))  # fmt: skip
    assert len(by_protocol["http"]) == 1 and len(by_protocol["grpc"]) == 3
    http_request, http_response, http_status = by_protocol["http"][0]
    assert http_status == "200" and http_request["parameters"]["ssn"] == "[REDACTED]"
    served = [e for e in by_protocol["grpc"] if e[2] == "200"]
    assert len(served) == 2
    for request, response, _ in served:  # raw and typed: logged as the HTTP one was
        assert request == http_request
        assert response == http_response
    [(bad_request, bad_response, bad_status)] = [e for e in by_protocol["grpc"] if e[2] != "200"]
    assert bad_status == "400"
    assert bad_response == {"error": "input 'input-0': 20 values do not fill shape [2, 20]"}
    assert bad_request["inputs"][0]["data"] == rows[0].tolist()


def test_a_sink_that_is_down_neither_fails_nor_slows_grpc_calls(
    forest_model: Path, tmp_path: Path
) -> None:
    # A listening socket nobody accepts on: connections complete in the backlog and every
    # POST waits for an answer that never comes (the logger gives up after 5 s).
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1)
    env = {c.ENV_PAYLOAD_LOG_URL: f"http://127.0.0.1:{hole.getsockname()[1]}/events", **IDENTITY}
    server, address = grpc_server(forest_model, env)
    X, _ = make_data()
    took: list[float] = []
    try:
        server.wait_ready()
        with grpc.insecure_channel(address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            stub.ModelInfer(raw(X[:1]), timeout=10)  # connected (not timed: channel set-up)
            for i in range(1, 41):
                began = time.perf_counter()
                answer = stub.ModelInfer(raw(X[i : i + 1]), timeout=10)
                took.append(time.perf_counter() - began)
                assert answer.outputs[0].name == "predict"
        drops = counted_drops(server, 41, 30)
    finally:
        code = server.stop()
        hole.close()
    assert code == 0, server.output()
    assert sum(drops.values()) == 41  # every sampled call is accounted for, once
    assert max(took) < 2.0, took  # none waited for the sink's 5 s
    assert "Traceback" not in server.output()


def test_at_rate_zero_nothing_is_sent(forest_model: Path, tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, "zero").start()
    env = {c.ENV_PAYLOAD_LOG_URL: receiver.url, c.ENV_PAYLOAD_LOG_RATE: "0", **IDENTITY}
    server, address = grpc_server(forest_model, env)
    X, _ = make_data()
    try:
        server.wait_ready()
        with grpc.insecure_channel(address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            for i in range(10):
                assert stub.ModelInfer(raw(X[i : i + 1]), timeout=10).outputs[0].name == "predict"
        time.sleep(1.5)  # what was sampled would have reached the receiver by now
        received = receiver.received()
        metrics = requests.get(server.metrics_url, timeout=5).text
    finally:
        code = server.stop()
        receiver.stop()
    assert code == 0, server.output()
    assert received == []
    assert 'protocol="grpc",status="200"' in metrics  # the calls were served and counted
    assert "mlkube_payload_log_events_sent_total{" not in metrics
