"""Payload logging of gRPC ModelInfer calls: the V2 JSON a call is logged as (the same as the
equivalent HTTP JSON request's), redaction on it, and a real in-process gRPC server logging to
a real loopback sink through the worker's one PayloadLogger."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest

from mlkube import contract as c
from mlkube_serving import metrics
from mlkube_serving.app import ServingApp
from mlkube_serving.payload_log import (
    REDACTED,
    RENDER_ON_LOOP_BYTES,
    LogConfig,
    Pair,
    PayloadLogger,
    events_of,
)
from mlkube_serving.protocols import grpc_service
from mlkube_serving.protocols.grpc_schema import MESSAGE_CLASSES as M
from mlkube_serving.protocols.grpc_service import (
    PROTOBUF_REQUEST,
    render_call,
    request_json,
    start_server,
)
from mlkube_serving.protocols.v2 import encode_response
from mlkube_serving.tensors import InferenceResponse, Tensor
from support.payload_sink import Sink
from support.serving_asgi import make_app

JSON = b"application/json"
URL = "http://127.0.0.1:9/events"

# One request as an HTTP client sends it (V2 JSON, row-major flat data, as tritonclient.http
# does), covering every way a value is spelled: floats of both widths, ints, bools, BYTES.
HTTP_BODY: dict[str, Any] = {
    "id": "r-1",
    "parameters": {"ssn": "123-45-6789", "priority": 2, "trace": True},
    "inputs": [
        {"name": "x", "shape": [2, 3], "datatype": "FP64",
         "data": [0.1, 1.5, -2.0, 3.0, 4.25, 1e-300]},
        {"name": "f", "shape": [2], "datatype": "FP32", "data": [0.1, 2.5]},
        {"name": "n", "shape": [3], "datatype": "INT32", "data": [-1, 0, 7]},
        {"name": "u", "shape": [1], "datatype": "UINT64", "data": [2**63 + 5]},
        {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        {"name": "ssn", "shape": [2], "datatype": "BYTES", "data": ["123-45-6789", "héllo"]},
    ],
    "outputs": [{"name": "predict"}],
}  # fmt: skip
NUMPY = {"FP64": "<f8", "FP32": "<f4", "INT32": "<i4", "UINT64": "<u8", "BOOL": "?"}


def grpc_request(raw: bool) -> Any:
    """HTTP_BODY as a ModelInferRequest: `raw_input_contents` (tritonclient's way) or typed
    `contents`."""
    message = M["ModelInferRequest"](model_name="forest", id="r-1")
    message.parameters["ssn"].string_param = "123-45-6789"
    message.parameters["priority"].int64_param = 2
    message.parameters["trace"].bool_param = True
    for spec in HTTP_BODY["inputs"]:
        tensor = message.inputs.add(name=spec["name"], datatype=spec["datatype"],
                                    shape=spec["shape"])  # fmt: skip
        values = spec["data"]
        if spec["datatype"] == "BYTES":
            words = [v.encode() for v in values]
            if raw:
                message.raw_input_contents.append(
                    b"".join(len(w).to_bytes(4, "little") + w for w in words)
                )
            else:
                tensor.contents.bytes_contents.extend(words)
        elif raw:
            message.raw_input_contents.append(
                np.array(values, dtype=NUMPY[spec["datatype"]]).tobytes()
            )
        else:
            field = grpc_service.CONTENTS[spec["datatype"]]
            getattr(tensor.contents, field).extend(values)
    message.outputs.add(name="predict")
    return message


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "typed_contents"])
def test_a_grpc_request_is_logged_as_its_http_json_body(raw: bool) -> None:
    body, content_type = request_json(grpc_request(raw))
    assert content_type == JSON
    assert orjson.loads(body) == HTTP_BODY


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "typed_contents"])
def test_redaction_hides_the_same_fields_as_over_http(raw: bool) -> None:
    config = LogConfig(URL, redact=frozenset({"ssn"}))
    http = Pair("forest", orjson.dumps(HTTP_BODY), JSON, 200, b"{}", JSON, 0.0)
    body, content_type = request_json(grpc_request(raw))
    over_grpc = Pair("forest", body, content_type, 200, b"{}", JSON, 0.0, "grpc")
    http_event = (events_of(http, config) or [])[0]
    grpc_event = (events_of(over_grpc, config) or [])[0]
    logged = orjson.loads(grpc_event.data)
    assert logged == orjson.loads(http_event.data)
    assert logged["parameters"]["ssn"] == REDACTED and logged["inputs"][5]["data"] == REDACTED
    assert logged["inputs"][0]["data"][:2] == [0.1, 1.5]  # the rest is untouched
    assert grpc_event.extensions["protocol"] == "grpc"
    assert http_event.extensions["protocol"] == "http"


def test_the_logged_answer_is_the_http_json_answer_and_errors_their_error_body() -> None:
    response = InferenceResponse("forest", "2", [
        Tensor("predict", np.array([1, 0]), "INT64"),
        Tensor("label", np.array([b"yes", b"no"], dtype=object), "BYTES"),
    ], "r-1")  # fmt: skip
    request, _, answer, answer_type = render_call(grpc_request(True), response, b"unused")
    assert answer == encode_response(response, False)[0] and answer_type == JSON
    assert orjson.loads(answer) == {
        "model_name": "forest", "model_version": "2", "id": "r-1",
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [2], "data": [1, 0]},
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]},
        ],
    }  # fmt: skip
    assert orjson.loads(request) == HTTP_BODY
    error = b'{"error":"input \'x\': 3 values do not fill shape [2, 20]"}'
    assert render_call(grpc_request(False), None, error)[2] == error


def test_values_that_do_not_fit_their_shape_are_logged_as_sent() -> None:
    message = M["ModelInferRequest"](model_name="forest")
    message.inputs.add(name="x", datatype="FP64", shape=[2, 20]).contents.fp64_contents.extend(
        [1.0, 2.0, 3.0]
    )
    body, content_type = request_json(message)
    assert content_type == JSON
    assert orjson.loads(body) == {
        "inputs": [{"name": "x", "shape": [2, 20], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]
    }


@pytest.mark.parametrize(
    "build",
    [
        lambda m: (
            m.inputs.add(name="x", datatype="FP64", shape=[1, 20]),
            m.raw_input_contents.append(b"x" * 8),
        ),
        lambda m: (
            m.inputs.add(name="w", datatype="BYTES", shape=[1]),
            m.raw_input_contents.append(b"\x02\x00\x00\x00\xff\xfe"),
        ),
        lambda m: (
            m.inputs.add(name="x", datatype="INT8", shape=[0]),
            m.raw_input_contents.extend([b"", b""]),
        ),
    ],
    ids=["raw_bytes_not_fitting_the_shape", "bytes_not_utf8", "raw_entries_not_matching"],
)
def test_a_request_without_a_json_form_is_the_message_itself(build: Any) -> None:
    message = M["ModelInferRequest"](model_name="forest")
    build(message)
    body, content_type = request_json(message)
    assert content_type == PROTOBUF_REQUEST
    assert M["ModelInferRequest"].FromString(body) == message
    # Nothing to redact by name in it: with redaction configured it is not sent.
    pair = Pair("forest", body, content_type, 400, b'{"error":"x"}', JSON, 0.0, "grpc")
    assert events_of(pair, LogConfig(URL, redact=frozenset({"x"}))) is None
    assert events_of(pair, LogConfig(URL)) is not None


# -- a real gRPC server in-process, logging to a real loopback sink ----------------------------
def dropped(model: str, reason: str) -> float:
    return float(metrics.PAYLOAD_LOG_DROPPED.labels(model, reason)._value.get())


def stub(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=M["ModelInferRequest"].SerializeToString,
        response_deserializer=M["ModelInferResponse"].FromString,
    )


def forest_request(rows: np.ndarray[Any, Any], raw: bool, request_id: str = "") -> Any:
    message = M["ModelInferRequest"](model_name="forest", id=request_id)
    tensor = message.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    if raw:
        message.raw_input_contents.append(rows.astype("<f8").tobytes())
    else:
        tensor.contents.fp64_contents.extend(rows.reshape(-1).tolist())
    return message


@pytest.fixture(scope="module")
def app(forest_dir: Path) -> ServingApp:
    return make_app(forest_dir, name="forest", version="2")


async def arrived(sink: Sink, count: int, within: float = 5.0) -> None:
    """Wait until `sink` took `count` POSTs (a refused call is offered after its status went
    out, so the client can be done first), or `within` seconds passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(sink.received) < count and loop.time() < deadline:
        await asyncio.sleep(0.01)


async def serve(app: ServingApp, logger: PayloadLogger) -> tuple[grpc.aio.Server, str]:
    from mlkube.devcluster.procs import free_port

    app.payload_log = logger
    port = free_port()
    return await start_server(app, "127.0.0.1", port), f"127.0.0.1:{port}"


def test_a_sampled_call_reaches_the_sink_as_a_pair_and_a_failed_one_with_its_status(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    rows = X[:2]

    async def run() -> tuple[Any, list[tuple[dict[str, str], bytes]]]:
        sink = Sink()
        logger = PayloadLogger(
            LogConfig(await sink.start(), endpoint="credit", redact=frozenset({"ssn"}))
        )
        logger.start()
        server, address = await serve(app, logger)
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                answer = await stub(channel)(forest_request(rows, raw=True, request_id="g-1"))
                bad = M["ModelInferRequest"](model_name="forest")
                bad.inputs.add(name="input-0", datatype="FP64", shape=[2, 20])
                bad.inputs[0].contents.fp64_contents.extend([1.0] * 3)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub(channel)(bad)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await arrived(sink, 4)
        finally:
            await server.stop(0)
            await logger.stop()
            await sink.stop()
            app.payload_log = None
        return answer, sink.received

    answer, received = asyncio.run(run())
    assert len(received) == 4
    by_id: dict[str, dict[str, tuple[dict[str, str], Any]]] = {}
    for headers, body in received:
        by_id.setdefault(headers["ce-id"], {})[headers["ce-type"]] = (headers, orjson.loads(body))
        assert headers["ce-protocol"] == "grpc" and headers["content-type"] == "application/json"
        assert headers["ce-inferenceservicename"] == "credit"
    assert len(by_id) == 2
    pairs = sorted(by_id.values(), key=lambda p: p[c.PAYLOAD_LOG_RESPONSE_TYPE][0]["ce-statuscode"])
    (ok_req, ok_resp), (bad_req, bad_resp) = [
        (p[c.PAYLOAD_LOG_REQUEST_TYPE], p[c.PAYLOAD_LOG_RESPONSE_TYPE]) for p in pairs
    ]
    assert ok_resp[0]["ce-statuscode"] == "200" and bad_resp[0]["ce-statuscode"] == "400"
    # The request: what the equivalent HTTP JSON request body is (flat data).
    assert ok_req[1] == {"id": "g-1", "inputs": [{"name": "input-0", "shape": [2, 20],
                         "datatype": "FP64", "data": rows.reshape(-1).tolist()}]}  # fmt: skip
    # The response: the JSON form of what the gRPC client got.
    predict = np.frombuffer(answer.raw_output_contents[0], "<i8").tolist()
    assert ok_resp[1]["id"] == "g-1" and ok_resp[1]["model_name"] == "forest"
    assert ok_resp[1]["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [2], "data": predict}
    ]
    assert bad_req[1]["inputs"][0]["data"] == [1.0, 1.0, 1.0]
    assert bad_resp[1] == {"error": "input 'input-0': 3 values do not fill shape [2, 20]"}


def test_a_call_the_coin_does_not_pick_is_not_rendered_or_sent(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = data
    rendered: list[Any] = []
    real = grpc_service.render_call
    monkeypatch.setattr(grpc_service, "render_call", lambda *a: rendered.append(a) or real(*a))

    async def run(rate: float, coin: float) -> int:
        sink = Sink()
        logger = PayloadLogger(LogConfig(await sink.start(), rate=rate), coin=lambda: coin)
        logger.start()
        server, address = await serve(app, logger)
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                for i in range(5):
                    await stub(channel)(forest_request(X[i : i + 1], raw=i % 2 == 0))
            await arrived(sink, 10, within=5.0 if coin < rate else 0.3)
        finally:
            await server.stop(0)
            await logger.stop()
            await sink.stop()
            app.payload_log = None
        return len(sink.received)

    assert asyncio.run(run(rate=0.0, coin=0.0)) == 0
    assert asyncio.run(run(rate=0.5, coin=0.7)) == 0
    assert rendered == []  # never encoded
    assert asyncio.run(run(rate=0.5, coin=0.3)) == 10  # the same coin, picked: five pairs
    assert len(rendered) == 5


def test_a_hanging_sink_neither_fails_nor_slows_calls_and_drops_are_counted(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    model = "forest"

    async def run() -> list[float]:
        sink = Sink(delay=30.0)  # takes every POST, never answers within the logger's 5 s timeout
        config = LogConfig(await sink.start(), senders=1, timeout=5.0, max_pending=4)
        logger = PayloadLogger(config)
        logger.start()
        server, address = await serve(app, logger)
        took = []
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                for i in range(20):
                    began = time.perf_counter()
                    answer = await stub(channel)(forest_request(X[i : i + 1], raw=True))
                    took.append(time.perf_counter() - began)
                    assert len(answer.outputs) == 1 and answer.outputs[0].name == "predict"
        finally:
            await server.stop(0)
            await logger.stop(grace=0)
            await sink.stop()
            app.payload_log = None
        return took

    before = dropped(model, "queue_full")
    took = asyncio.run(run())
    assert len(took) == 20
    # One POST hangs in the one sender, four wait in the queue: the other 15 are dropped at
    # once, and no call waited for the sink (its POST alone takes 5 s to time out).
    assert dropped(model, "queue_full") - before == 15
    assert max(took) < 1.0, took


def test_calls_shed_before_any_work_are_not_logged_as_over_http(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP sheds too many concurrent requests (429) before reading a body and logs nothing;
    a gRPC call shed the same way is not logged either, while a served one is."""
    X, _ = data

    async def run(limit: int) -> tuple[grpc.StatusCode, int]:
        monkeypatch.setattr(app, "settings", replace(app.settings, max_concurrency=limit))
        sink = Sink()
        logger = PayloadLogger(LogConfig(await sink.start()), coin=lambda: 0.0)
        logger.start()
        server, address = await serve(app, logger)
        code = grpc.StatusCode.OK
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                try:
                    await stub(channel)(forest_request(X[:1], raw=True))
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
            await arrived(sink, 2, within=0.5 if code != grpc.StatusCode.OK else 5.0)
        finally:
            await server.stop(0)
            await logger.stop()
            await sink.stop()
            app.payload_log = None
        return code, len(sink.received)

    assert asyncio.run(run(limit=0)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, 0)
    assert asyncio.run(run(limit=64)) == (grpc.StatusCode.OK, 2)


def test_large_deferred_calls_are_rendered_off_the_loop() -> None:
    """A big call's JSON is made in a thread (the loop keeps serving); a small one inline."""
    threads: dict[str, int] = {}

    def render(label: str) -> Any:
        def make() -> Any:
            threads[label] = threading.get_ident()
            return b"{}", JSON, b"{}", JSON

        return make

    async def run() -> int:
        sink = Sink()
        logger = PayloadLogger(LogConfig(await sink.start()), coin=lambda: 0.0)
        logger.start()
        try:
            logger.offer_rendered("m", 200, 100, render("small"), "grpc")
            logger.offer_rendered("m", 200, RENDER_ON_LOOP_BYTES + 1, render("large"), "grpc")
            await arrived(sink, 4)
        finally:
            await logger.stop()
            await sink.stop()
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    assert threads["small"] == loop_thread and threads["large"] != loop_thread
