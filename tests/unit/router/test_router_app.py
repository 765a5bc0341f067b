"""The ASGI router against stub upstream pools: targeting, auth, refusals, header hygiene."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlkube_serving._http.client import UpstreamResponse
from mlkube_serving.router.app import RouterApp
from mlkube_serving.router.errors import UpstreamUnreachable
from mlkube_serving.router.metrics import RouterMetrics

BODY = b'{"inputs": []}'


class StubPool:
    """Stands in for an UpstreamPool: records requests, answers with the deployment's name."""

    def __init__(self, name: str, sent: list[tuple[str, bytes]], refuse: bool = False) -> None:
        self.name = name
        self.sent = sent
        self.refuse = refuse

    async def request(self, data: bytes, deadline: float, **_: Any) -> Any:
        if self.refuse:
            raise UpstreamUnreachable("cannot connect to x:1: connection refused")
        self.sent.append((self.name, data))
        body = orjson.dumps({"predictions": [self.name]})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"99")]
        return UpstreamResponse(200, headers, body)


def make_app(tmp_path: Path, rand: float = 0.5, **overrides: Any) -> tuple[RouterApp, list[Any]]:
    doc: dict[str, Any] = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {n: {"url": f"http://{n}:8080"} for n in ("blue", "green", "red")},
        "traffic": {"blue": 70, "green": 30},
        "mirror": {"red": 100},
    }
    doc.update(overrides)
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(doc))
    app = RouterApp(str(path), metrics=RouterMetrics(), rand=lambda: rand)
    assert app.reload_if_changed()
    sent: list[tuple[str, bytes]] = []
    assert app.table is not None
    for route in app.table.routes.values():
        object.__setattr__(route, "pool", StubPool(route.name, sent))
    return app, sent


def call(
    app: RouterApp, headers: list[tuple[bytes, bytes]], path: str = "/v2/models/m/infer"
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"router"), *headers],
    }
    messages: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)

    async def run() -> None:
        await app(scope, receive, send)
        await asyncio.sleep(0.01)  # let mirror tasks run

    asyncio.run(run())
    start, body = messages[0], messages[1]
    return start["status"], dict(start["headers"]), body["body"]


def test_live_request_is_split_and_mirrored(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path, rand=0.5)
    status, headers, body = call(app, [(b"x-mlkube-mirrored", b"true"), (b"x-trace", b"7")])
    assert (status, body) == (200, b'{"predictions":["blue"]}')
    assert headers[b"x-mlkube-deployment"] == b"blue"
    assert headers[b"content-length"] == str(len(body)).encode()
    assert [name for name, _ in sent] == ["blue", "red"]
    live, mirror = sent[0][1], sent[1][1]
    assert live.startswith(b"POST /v2/models/m/infer HTTP/1.1\r\nhost: blue:8080\r\n")
    assert b"x-trace: 7\r\n" in live and live.endswith(b"\r\n\r\n" + BODY)
    assert b"x-mlkube-mirrored" not in live, "clients cannot forge the mirror mark"
    assert b"x-mlkube-mirrored: true\r\n" in mirror and b"host: red:8080\r\n" in mirror


@pytest.mark.parametrize("header", [b"x-mlkube-deployment", b"azureml-model-deployment"])
def test_targeting_header_sends_only_to_that_deployment(tmp_path: Path, header: bytes) -> None:
    app, sent = make_app(tmp_path, rand=0.0)
    status, headers, _ = call(app, [(header, b"green")])
    assert status == 200 and headers[b"x-mlkube-deployment"] == b"green"
    assert [name for name, _ in sent] == ["green"], "targeted requests are never mirrored"


def test_unknown_target_is_404_listing_valid_names(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path)
    status, _, body = call(app, [(b"x-mlkube-deployment", b"purple")])
    assert status == 404
    assert orjson.loads(body) == {
        "error": "deployment 'purple' does not exist in endpoint 'credit' (valid: blue, green, red)"
    }
    assert sent == []


def test_no_live_traffic_is_503_pointing_at_targeting(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path, traffic={}, mirror={})
    status, _, body = call(app, [])
    assert status == 503 and "sends no live traffic" in orjson.loads(body)["error"]
    assert sent == []
    assert call(app, [(b"x-mlkube-deployment", b"red")])[0] == 200


def test_key_auth_refuses_then_accepts_and_strips_the_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("s3cret\n")
    app, sent = make_app(tmp_path, auth={"mode": "key", "keysFile": str(keys)}, mirror={})
    status, headers, body = call(app, [(b"authorization", b"Bearer wrong")])
    assert status == 401 and orjson.loads(body) == {"error": "invalid key"}
    assert headers[b"www-authenticate"].startswith(b"Bearer")
    assert sent == []
    status, _, _ = call(app, [(b"authorization", b"Bearer s3cret")])
    assert status == 200
    assert b"s3cret" not in sent[0][1]


def test_health_endpoints_do_not_touch_upstreams(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path)
    status, _, body = call(app, [], path="/healthz")
    assert (status, body) == (200, b'{"status":"ok"}')
    status, _, body = call(app, [], path="/readyz")
    assert status == 503 and orjson.loads(body)["deployments"] == {
        "blue": False,
        "green": False,
        "red": False,
    }
    app.health.mark("green", True)
    assert call(app, [], path="/readyz")[0] == 200
    assert sent == []


def test_router_without_config_refuses_with_the_reason(tmp_path: Path) -> None:
    app = RouterApp(str(tmp_path / "missing.json"), metrics=RouterMetrics())
    assert not app.reload_if_changed()
    status, _, body = call(app, [])
    assert status == 503 and "cannot read router config" in orjson.loads(body)["error"]
    assert call(app, [], path="/readyz")[0] == 503


def test_refused_live_deployment_fails_over_to_the_others(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path, rand=0.1, mirror={})
    assert app.table is not None
    blue = app.table.routes["blue"]
    object.__setattr__(blue, "pool", StubPool("blue", sent, refuse=True))
    status, headers, _ = call(app, [])
    assert status == 200 and headers[b"x-mlkube-deployment"] == b"green"
    status, _, body = call(app, [(b"x-mlkube-deployment", b"blue")])
    assert status == 503
    assert orjson.loads(body)["error"].startswith("deployment 'blue' is unreachable")
