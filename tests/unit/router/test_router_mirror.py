"""Mirror dispatcher: bounded concurrency, queue and bytes, drops counted, agreement recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from prometheus_client import generate_latest

from mlkube_serving._http.client import UpstreamResponse
from mlkube_serving.router.metrics import RouterMetrics
from mlkube_serving.router.mirror import MirrorDispatcher, MirrorJob
from mlkube_serving.router.table import Route

LIVE = orjson.dumps({"predictions": [1, 2]})
BIG = 1 << 30


class GatedPool:
    """Answers only when the gate opens, echoing predictions [1, 2] or [9, 9]."""

    def __init__(self, agree: bool) -> None:
        self.gate = asyncio.Event()
        self.seen: list[bytes] = []
        self.body = LIVE if agree else orjson.dumps({"predictions": [9, 9]})

    async def request(self, data: bytes, deadline: float, **_: Any) -> UpstreamResponse:
        self.seen.append(data)
        await self.gate.wait()
        return UpstreamResponse(200, [], self.body)


def job(pool: GatedPool, name: str = "green") -> MirrorJob:
    route = Route(name, name.encode(), pool, b"host: g\r\n", "/ready")  # type: ignore[arg-type]
    path = b"/v1/models/m:predict"
    return MirrorJob(route, b"POST", path, b"x-a: 1\r\n", b"{}", 200, LIVE, 5.0, 1e-6)


def test_full_queue_drops_and_counts_while_live_path_never_waits() -> None:
    metrics = RouterMetrics()
    dispatcher = MirrorDispatcher(metrics)
    pool = GatedPool(agree=True)

    async def run() -> None:
        for _ in range(5):
            dispatcher.submit(
                job(pool), concurrency=1, queue_size=2, max_bytes=BIG
            )  # returns at once
        assert dispatcher.backlog == 3
        await asyncio.sleep(0.01)
        pool.gate.set()
        for _ in range(100):
            if dispatcher.backlog == 0:
                break
            await asyncio.sleep(0.01)

    asyncio.run(run())
    assert len(pool.seen) == 3
    assert metrics.mirror_dropped.labels("green", "queue_full")._value.get() == 2
    assert metrics.mirror_agreement.labels("green")._value.get() == 3
    assert all(b"x-mlkube-mirrored: true\r\n" in data for data in pool.seen)


def test_disagreement_and_uncomparable_answers_are_counted_apart() -> None:
    metrics = RouterMetrics()
    dispatcher = MirrorDispatcher(metrics)
    disagree = GatedPool(agree=False)
    disagree.gate.set()
    failing = GatedPool(agree=True)
    failing.gate.set()

    async def failing_request(data: bytes, deadline: float, **_: Any) -> UpstreamResponse:
        return UpstreamResponse(500, [], b'{"error": "boom"}')

    failing.request = failing_request  # type: ignore[method-assign]

    async def run() -> None:
        dispatcher.submit(job(disagree, "red"), concurrency=4, queue_size=4, max_bytes=BIG)
        dispatcher.submit(job(failing, "blue"), concurrency=4, queue_size=4, max_bytes=BIG)
        await dispatcher.drain(timeout=1.0)

    asyncio.run(run())
    text = generate_latest(metrics.registry).decode()
    assert 'mlkube_router_mirror_compared_total{deployment="red"} 1.0' in text
    assert 'mlkube_router_mirror_agreement_total{deployment="red"}' not in text
    assert 'mlkube_router_mirror_uncomparable_total{deployment="blue"} 1.0' in text
    assert 'mlkube_router_requests_total{deployment="blue",kind="mirror",status="500"} 1.0' in text


def test_copies_past_the_byte_budget_are_shed_and_the_budget_is_released() -> None:
    metrics = RouterMetrics()
    dispatcher = MirrorDispatcher(metrics)
    pool = GatedPool(agree=True)
    big = 100_000

    def heavy() -> MirrorJob:
        copy = job(pool)
        copy.body = b"x" * big
        return copy

    async def run() -> None:
        for _ in range(10):
            dispatcher.submit(heavy(), concurrency=2, queue_size=100, max_bytes=3 * big + 300_000)
        # Each copy holds ~100 KB of body plus room for answers: three fit, seven are shed.
        assert dispatcher.backlog == 3
        assert 0 < dispatcher.budget.used <= dispatcher.budget.limit
        pool.gate.set()
        for _ in range(100):
            if dispatcher.backlog == 0:
                break
            await asyncio.sleep(0.01)

    asyncio.run(run())
    assert metrics.mirror_dropped.labels("green", "byte_budget")._value.get() == 7
    assert metrics.mirror_dropped.labels("green", "queue_full")._value.get() == 0
    assert dispatcher.budget.used == 0
    assert len(pool.seen) == 3
