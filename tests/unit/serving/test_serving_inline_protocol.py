"""The inline lane of the HTTP protocol (inline_protocol.py): uvicorn's real protocol class and
the real app and model, fed bytes through a recording transport, inside a running loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from mlkube_serving.app import ServingApp
from mlkube_serving.inline_protocol import InlineHttpProtocol
from mlkube_serving.tensors import Tensor
from support.serving import v2_body
from support.serving_asgi import make_app


class Transport(asyncio.Transport):
    """Records what the protocol writes and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def request(body: bytes, path: str = "/v2/models/forest/infer", extra: str = "",
            version: str = "1.1") -> bytes:  # fmt: skip
    head = f"POST {path} HTTP/{version}\r\nhost: x\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n{extra}\r\n".encode() + body


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream of content-length framed responses."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        size = int(headers["content-length"])
        found.append((int(lines[0].split()[1]), headers, rest[:size]))
        raw = rest[size:]
    return found


@pytest.fixture(scope="module")
def app(forest_dir: Path) -> ServingApp:
    served = make_app(forest_dir, name="forest", inline_max_bytes=4096)
    served.open_inline_lane()
    return served


def connect(app: ServingApp, keep_alive: float = 5.0) -> tuple[InlineHttpProtocol, Transport]:
    config = uvicorn.Config(app, http=InlineHttpProtocol, timeout_keep_alive=keep_alive)
    config.load()
    protocol = InlineHttpProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_small_requests_are_answered_before_the_loop_turns(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    expected = app.dataplane.get("forest").runtime.predict
    bodies = [orjson.dumps(v2_body(X[i : i + 2], id=f"r{i}")) for i in range(3)]

    async def go() -> None:
        protocol, transport = connect(app)
        protocol.data_received(request(bodies[0]))
        first = responses(bytes(transport.written))  # no await in between: no task ran
        assert [status for status, _, _ in first] == [200]
        protocol.data_received(request(bodies[1]) + request(bodies[2]))  # pipelined
        answers = responses(bytes(transport.written))
        assert [orjson.loads(b)["id"] for _, _, b in answers] == ["r0", "r1", "r2"]
        for i, (_, headers, body) in enumerate(answers):
            assert headers["content-type"] == "application/json"
            assert "connection" not in headers  # kept alive
            labels = orjson.loads(body)["outputs"][0]["data"]
            want = expected([Tensor("input-0", X[i : i + 2], "FP64")], None)[0].data
            assert labels == want.tolist()
        assert not transport.closed

    run(go())


def test_errors_in_the_lane_are_4xx_with_a_reason(app: ServingApp) -> None:
    async def go() -> None:
        protocol, transport = connect(app)
        protocol.data_received(request(b"{not json"))
        protocol.data_received(request(b"{}", path="/v2/models/nope/infer"))
        (bad, _, reason), (missing, _, why) = responses(bytes(transport.written))
        assert bad == 400 and b"not valid JSON" in reason
        assert missing == 404 and b"nope" in why

    run(go())


def test_other_requests_take_the_asgi_path_and_keep_their_order(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any]
) -> None:
    X, _ = data
    large = orjson.dumps(v2_body(X[:100], id="large"))  # past inline_max_bytes (4096)
    small = orjson.dumps(v2_body(X[:1], id="small"))
    chunked = (b"POST /v2/models/forest/infer HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked"
               b"\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))  # fmt: skip

    async def go() -> None:
        protocol, transport = connect(app)
        protocol.data_received(request(large) + request(small) + chunked)
        assert not transport.written  # the large one runs in the thread; the rest waits
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(responses(bytes(transport.written))) == 3:
                break
        answers = responses(bytes(transport.written))
        assert [orjson.loads(b)["id"] for _, _, b in answers] == ["large", "small", "small"]
        assert [s for s, _, _ in answers] == [200, 200, 200]
        assert len(orjson.loads(answers[0][2])["outputs"][0]["data"]) == 100

    run(go())


def test_expect_continue_goes_through_asgi(app: ServingApp) -> None:
    async def go() -> None:
        protocol, transport = connect(app)
        body = b"{}"
        head = request(body, extra="expect: 100-continue\r\n")
        protocol.data_received(head[: -len(body)])
        for _ in range(100):
            await asyncio.sleep(0.01)
            if transport.written:
                break
        assert bytes(transport.written).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        protocol.data_received(body)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if b"400" in transport.written:
                break
        assert b"HTTP/1.1 400" in transport.written  # '{}' has no inputs: still answered

    run(go())


def test_http10_and_connection_close_close_after_the_answer(app: ServingApp) -> None:
    async def go() -> None:
        for version, extra in (("1.0", ""), ("1.1", "connection: close\r\n")):
            protocol, transport = connect(app)
            protocol.data_received(request(b"{}", extra=extra, version=version))
            ((status, headers, _),) = responses(bytes(transport.written))
            assert status == 400 and headers["connection"] == "close"
            assert transport.closed

    run(go())


def test_idle_connections_close_after_the_keep_alive_timeout(app: ServingApp) -> None:
    async def go() -> None:
        protocol, transport = connect(app, keep_alive=0.2)
        for _ in range(5):  # activity keeps it open: one timer, re-armed, never per request
            protocol.data_received(request(b"{}"))
            await asyncio.sleep(0.08)
        assert not transport.closed
        await asyncio.sleep(0.4)
        assert transport.closed
        protocol.connection_lost(None)

    run(go())


def test_the_lane_stays_shut_until_the_models_loaded(forest_dir: Path) -> None:
    fresh = make_app(forest_dir, name="forest")
    headers = [(b"content-length", b"2")]
    assert fresh.inline_route(b"/v2/models/forest/infer", headers) is None
    fresh.open_inline_lane()
    assert fresh.inline_route(b"/v2/models/forest/infer", headers) is not None
    assert fresh.inline_route(b"/v2/models/forest/infer?x=1", headers) is not None
    assert fresh.inline_route(b"/v2/models/forest", headers) is None  # metadata: not inference
    assert fresh.inline_route(b"/v2/models/f%6Frest/infer", headers) is None  # escaped: ASGI
    assert fresh.inline_route(b"/v2/models/forest/infer", [(b"content-length", b"x")]) is None
    assert fresh.inline_route(b"/v2/models/forest/infer", []) is None  # no length: chunked
    batching = make_app(forest_dir, name="forest", max_batch_size=8)
    batching.open_inline_lane()
    assert batching.inline_route(b"/v2/models/forest/infer", headers) is None


def test_the_server_uses_the_lane_with_this_uvicorn() -> None:
    from mlkube_serving.inline_protocol import protocol_class

    assert protocol_class() is InlineHttpProtocol


def test_a_request_running_after_an_inline_one_is_not_closed_as_idle(
    app: ServingApp, data: tuple[np.ndarray[Any, Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inline answer, then an ASGI request (in the thread) longer than the keep-alive timeout
    on the same connection and no new bytes: the timer must see it busy."""
    from mlkube_serving.protocols import v2

    X, _ = data
    original = v2.infer

    def slow(call: Any) -> Any:
        if len(call.body) > 4096:
            time.sleep(0.5)
        return original(call)

    monkeypatch.setattr(v2, "infer", slow)
    large = orjson.dumps(v2_body(X[:100], id="large"))

    async def go() -> None:
        protocol, transport = connect(app, keep_alive=0.2)
        protocol.data_received(request(orjson.dumps(v2_body(X[:1], id="small"))) + request(large))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(responses(bytes(transport.written))) == 2:
                break
        answers = responses(bytes(transport.written))
        assert [orjson.loads(b)["id"] for _, _, b in answers] == ["small", "large"]
        assert not transport.closed  # closed only once idle for the timeout, after both
        await asyncio.sleep(0.4)
        assert transport.closed
        protocol.connection_lost(None)

    run(go())


def test_requests_pipelined_behind_a_closing_answer_are_not_served(app: ServingApp) -> None:
    async def go() -> None:
        protocol, transport = connect(app)
        first = request(b"{}", extra="connection: keep-alive\r\n", version="1.0")
        protocol.data_received(first + request(b"{}") + request(b"{}"))
        assert len(responses(bytes(transport.written))) == 1 and transport.closed

    run(go())


def test_shutdown_while_an_inline_body_arrives_answers_it_then_closes(app: ServingApp) -> None:
    async def go() -> None:
        protocol, transport = connect(app)
        raw = request(b'{"inputs": []}')
        protocol.data_received(raw[:-5])
        protocol.shutdown()
        assert not transport.closed
        protocol.data_received(raw[-5:])
        ((status, headers, _),) = responses(bytes(transport.written))
        assert status == 400 and headers["connection"] == "close" and transport.closed

    run(go())


def test_body_limits_are_not_bypassed_by_the_lane(forest_dir: Path) -> None:
    small = make_app(forest_dir, name="forest", max_body_bytes=100)
    small.open_inline_lane()
    assert small.inline_route(b"/v2/models/forest/infer", [(b"content-length", b"100")])
    assert small.inline_route(b"/v2/models/forest/infer", [(b"content-length", b"101")]) is None
    tight = make_app(forest_dir, name="forest", max_queued_bytes=50)
    tight.open_inline_lane()
    assert tight.inline_route(b"/v2/models/forest/infer", [(b"content-length", b"51")]) is None
