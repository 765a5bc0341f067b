"""B9: the router bounds bytes, not requests: mirror copies, live bodies, upstream answers.

Each test pushes past one budget against a real router process and checks that it refuses or
sheds with a reason (and counts it), keeps serving, and never dies.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
from router_harness import V2_PATH, Upstream, base_config, fire, wait_until

MiB = 1024 * 1024


class RawUpstream:
    """A loopback HTTP/1.1 server whose answer is a fixed byte prelude, then `tail` forever.

    `silent=True` reads requests and never answers (a shadow that hangs); `hold=True` keeps
    the connection open after the prelude (an answer that stalls part-way).
    """

    def __init__(
        self, prelude: bytes = b"", tail: bytes = b"", silent: bool = False, hold: bool = False
    ) -> None:
        self.prelude, self.tail, self.silent, self.hold = prelude, tail, silent, hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                if self.silent:
                    while not self.stopped.is_set() and conn.recv(65536):
                        pass
                    return
                conn.sendall(self.prelude)
                while self.tail and not self.stopped.is_set():
                    conn.sendall(self.tail)
                while self.hold and not self.stopped.is_set() and conn.recv(65536):
                    pass
            except OSError:
                return  # the router cut us off: expected

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Any]:
    made: list[RawUpstream] = []

    def make(**kwargs: Any) -> RawUpstream:
        made.append(RawUpstream(**kwargs))
        return made[-1]

    yield make
    for upstream in made:
        upstream.close()


def big_v2_body(size: int) -> bytes:
    count = size // 4
    tensor = {"name": "x", "shape": [count], "datatype": "FP64", "data": [1.0] * count}
    return orjson.dumps({"inputs": [tensor]})


def test_mirror_copies_past_the_byte_budget_are_shed_and_counted(
    fresh_upstreams: dict[str, Upstream], start_router: Any, raw: Any
) -> None:
    hanging = raw(silent=True)  # the shadow never answers: every copy it gets stays held
    doc = base_config(
        {"blue": fresh_upstreams["blue"]},
        traffic={"blue": 100},
        mirror={"shadow": 100},
        mirrorMaxBytes=8 * MiB,
        timeoutSeconds=20,
    )
    doc["deployments"]["shadow"] = {"url": hanging.url}
    router = start_router(doc, wait_ready=True)
    body = big_v2_body(512 * 1024)
    results = asyncio.run(fire(router.url + V2_PATH, 30, concurrency=4, body=body))
    assert [r.status for r in results] == [200] * 30  # the live path never waits on copies
    shed = router.metric("mlkube_router_mirror_dropped_total", reason="byte_budget")
    assert shed > 0
    assert router.metric("mlkube_router_mirror_dropped_total", reason="queue_full") == 0
    assert router.proc.poll() is None
    # Held copies stay within the budget: at most 8 MiB / (~0.5 MiB body + 3 x answer).
    sent = router.metric("mlkube_router_requests_total", kind="mirror")
    assert sent == 0  # none answered yet: the shadow hangs
    assert requests.get(router.url + "/healthz", timeout=5).status_code == 200


def test_upstream_answer_past_the_cap_is_a_502_with_the_reason(start_router: Any, raw: Any) -> None:
    endless = raw(
        prelude=b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n",
        tail=b"10000\r\n" + b"x" * 0x10000 + b"\r\n",  # 64 KiB chunks, never a last one
    )
    declared = raw(prelude=b"HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\nxx")
    doc = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {"endless": {"url": endless.url}, "huge": {"url": declared.url}},
        "traffic": {"endless": 100},
        "maxResponseBytes": 2 * MiB,
        "timeoutSeconds": 20,
    }
    router = start_router(doc, wait_ready=False)
    for target in ("endless", "huge"):
        answer = requests.post(
            router.url + V2_PATH, data=b"{}", headers={"x-mlkube-deployment": target}, timeout=30
        )
        assert answer.status_code == 502, answer.text
        assert "2097152-byte limit" in answer.json()["error"]
        assert target in answer.json()["error"]
    assert router.metric("mlkube_router_upstream_errors_total", reason="too_large") == 2
    assert router.proc.poll() is None


def test_live_bodies_past_the_inflight_budget_get_503(start_router: Any, raw: Any) -> None:
    hanging = raw(silent=True)
    doc = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {"slow": {"url": hanging.url}},
        "traffic": {"slow": 100},
        "maxInflightBytes": 2 * MiB,
        "timeoutSeconds": 2,
    }
    router = start_router(doc, wait_ready=False)
    body = b"x" * (768 * 1024)  # two fit in 2 MiB, the rest must wait for nothing: 503
    results = asyncio.run(fire(router.url + V2_PATH, 5, concurrency=5, body=body))
    statuses = sorted(r.status for r in results)
    assert statuses == [503, 503, 503, 504, 504], statuses
    refused = next(r for r in results if r.status == 503)
    assert "maxInflightBytes" in orjson.loads(refused.body)["error"]
    assert router.metric("mlkube_router_shed_requests_total") == 3
    # Released after the timeouts: the budget is whole again.
    wait_until(lambda: requests.get(router.url + "/healthz", timeout=5).ok)
    again = asyncio.run(fire(router.url + V2_PATH, 2, concurrency=2, body=body))
    assert sorted(r.status for r in again) == [504, 504]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upstream_answers_past_the_inflight_budget_get_503(
    start_router: Any, raw: Any, framing: str
) -> None:
    """Answers are reserved in the in-flight budget in total, not only capped one by one."""
    part = 768 * 1024  # each answer fits maxResponseBytes; two fit the budget, three do not
    if framing == "content-length":
        prelude = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (part + 1) + b"x" * 100
    else:
        chunk = 64 * 1024
        prelude = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + (
            b"%x\r\n" % chunk + b"x" * chunk + b"\r\n"
        ) * (part // chunk)
    stalled = raw(prelude=prelude, hold=True)  # the answer never completes: its bytes stay held
    doc = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {"stalled": {"url": stalled.url}},
        "traffic": {"stalled": 100},
        "maxInflightBytes": 2 * MiB,
        "maxResponseBytes": 4 * MiB,
        "timeoutSeconds": 3,
    }
    router = start_router(doc, wait_ready=False)
    results = asyncio.run(fire(router.url + V2_PATH, 5, concurrency=5, body=b"{}"))
    statuses = sorted(r.status for r in results)
    # At most two answers are held at once; the others are shed, never buffered.
    assert statuses.count(503) >= 3 and set(statuses) <= {503, 504}, statuses
    refused = next(r for r in results if r.status == 503)
    error = orjson.loads(refused.body)["error"]
    assert "maxInflightBytes" in error and "upstream answer" in error, error
    shed = router.metric("mlkube_router_shed_requests_total", reason="response_bytes")
    assert shed == statuses.count(503)
    assert router.metric("mlkube_router_shed_requests_total", reason="request_bytes") == 0
    assert router.proc.poll() is None
    # Released after the timeouts: two answers fit again.
    again = asyncio.run(fire(router.url + V2_PATH, 2, concurrency=2, body=b"{}"))
    assert sorted(r.status for r in again) == [504, 504]


def test_router_publishes_the_hash_of_the_config_it_loaded(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    doc = base_config(fresh_upstreams)
    router = start_router(doc)
    state = requests.get(router.url + "/-/config", timeout=5).json()
    expected = "sha256:" + hashlib.sha256(orjson.dumps(doc)).hexdigest()
    assert state == {"loaded": True, "hash": expected, "endpoint": "credit", "revision": 0}
    assert router.metric("mlkube_router_config_info", hash=expected) == 1

    changed = base_config(fresh_upstreams, traffic={"blue": 50, "green": 50})
    router.update(changed)
    new = "sha256:" + hashlib.sha256(orjson.dumps(changed)).hexdigest()
    wait_until(lambda: requests.get(router.url + "/-/config", timeout=5).json()["hash"] == new)
    assert router.metric("mlkube_router_config_info", hash=expected) == 0

    router.update({"version": 99})  # invalid: the old config stays and so does its hash
    wait_until(lambda: "error" in requests.get(router.url + "/-/config", timeout=5).json())
    assert requests.get(router.url + "/-/config", timeout=5).json()["hash"] == new
