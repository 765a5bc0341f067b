"""The engine in one process against an aiohttp sink on loopback: delivery state, a failed
outcome write retried without loss, a deleted sink's backlog dropped and counted, a clean stop
recording what finished."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from mlkube.outbox.codec import to_outbox
from mlkube.outbox.engine import Delivery
from mlkube.outbox.metrics import FAILED
from mlkube.outbox.model import LOAD_BATCH, Occurrence, SinkConfig, Target
from mlkube.outbox.store import Outbox
from mlkube.outbox.transport import sink_policy
from support.event_objects import all_occurrences

# Unique, and stamped at import: `_run` opens its outbox with no replay window, since a full
# `make test` session imports this module many minutes before it runs these tests.
EVENTS = list({e.id: replace(to_outbox(e), time=time.time()) for e in all_occurrences()}.values())
NO_REPLAY_WINDOW = float("inf")


async def _sink(status: int) -> tuple[web.AppRunner, str, list[str]]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("ce-id", "?"))
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/", seen


async def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def _run(tmp_path: Path, body: Callable[[Delivery, Outbox], Awaitable[None]]) -> None:
    async def go() -> None:
        outbox = Outbox(tmp_path / "o.db", replay_window=NO_REPLAY_WINDOW)
        engine = Delivery(outbox, policy=sink_policy(allow_loopback=True))
        await engine.start()
        try:
            await body(engine, outbox)
        finally:
            await engine.stop()
            outbox.close()

    asyncio.run(go())


def test_state_after_delivery_and_a_failed_write_retried(tmp_path: Path, monkeypatch: Any) -> None:
    async def body(engine: Delivery, outbox: Outbox) -> None:
        runner, url, seen = await _sink(202)
        real, calls = outbox.settle, []

        def flaky(*args: Any, **kwargs: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise OSError("disk full")
            real(*args, **kwargs)

        monkeypatch.setattr(outbox, "settle", flaky)
        engine.set_sink(SinkConfig("ns/a", Target(url)))
        engine.enqueue(EVENTS, ["ns/a"])
        await _until(lambda: engine.state("ns/a").delivered == len(EVENTS))
        state = engine.state("ns/a")
        assert state.pending == 0 and state.failed == 0 and state.last_delivered_at
        assert set(seen) == {e.id for e in EVENTS}
        assert len(calls) >= 2
        await runner.cleanup()

    _run(tmp_path, body)


def test_a_deleted_sink_drops_its_backlog(tmp_path: Path) -> None:
    async def body(engine: Delivery, outbox: Outbox) -> None:
        engine.set_sink(SinkConfig("ns/down", Target("http://127.0.0.1:9/"), backoff_delay=60))
        before = FAILED.labels("ns/down", "sink_deleted")._value.get()
        engine.enqueue(EVENTS, ["ns/down"])
        await _until(lambda: engine.state("ns/down").last_failure is not None)
        engine.remove_sink("ns/down")
        await _until(lambda: outbox.pending() == {})
        assert FAILED.labels("ns/down", "sink_deleted")._value.get() - before == len(EVENTS)

    _run(tmp_path, body)


def test_enqueue_returns_at_once_while_a_sink_hangs(tmp_path: Path) -> None:
    async def body(engine: Delivery, outbox: Outbox) -> None:
        hang = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            await hang.wait()
            return web.Response(status=202)

        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        engine.set_sink(SinkConfig("ns/slow", Target(url), timeout=30))
        engine.enqueue(EVENTS[:4], ["ns/slow"])
        await asyncio.sleep(0.2)  # four sends hang
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = engine.enqueue(EVENTS[4:], ["ns/slow"])
        assert loop.time() - start < 0.5 and result.new == len(EVENTS) - 4
        assert outbox.pending() == {"ns/slow": len(EVENTS)}
        hang.set()
        await _until(lambda: engine.state("ns/slow").delivered == len(EVENTS))
        await runner.cleanup()

    _run(tmp_path, body)


def test_occurrences_are_outbox_values() -> None:
    assert all(isinstance(e, Occurrence) for e in EVENTS) and len({e.id for e in EVENTS}) > 10


def test_an_event_the_encoder_cannot_read_is_retried_then_given_up(tmp_path: Path) -> None:
    async def body(engine: Delivery, outbox: Outbox) -> None:
        runner, url, seen = await _sink(202)
        engine.set_sink(SinkConfig("ns/b", Target(url), retry=2, backoff_delay=0.01))
        bad = replace(EVENTS[0], id="bad", payload=b"not json")
        engine.enqueue([bad, EVENTS[1]], ["ns/b"])
        await _until(lambda: engine.state("ns/b").failed == 1)
        state = engine.state("ns/b")
        assert state.delivered == 1 and state.pending == 0
        assert state.last_failure is not None and "internal error" in state.last_failure.message
        assert seen == [EVENTS[1].id]
        await runner.cleanup()

    _run(tmp_path, body)


def test_memory_and_concurrency_are_bounded_while_a_sink_hangs(tmp_path: Path) -> None:
    many = [replace(EVENTS[0], id=f"e{i}") for i in range(700)]

    async def body(engine: Delivery, outbox: Outbox) -> None:
        hang, active, peak = asyncio.Event(), [0], [0]

        async def handle(request: web.Request) -> web.Response:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            await hang.wait()
            active[0] -= 1
            return web.Response(status=202)

        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        engine.set_sink(SinkConfig("ns/h", Target(url), concurrency=3, timeout=30))
        engine.enqueue(many, ["ns/h"])
        await asyncio.sleep(0.5)
        worker = engine._workers["ns/h"]
        assert len(worker._inflight) == LOAD_BATCH  # the other 444 rows stay on disk
        assert peak[0] == 3
        hang.set()
        await _until(lambda: engine.state("ns/h").delivered == len(many))
        assert peak[0] == 3
        await runner.cleanup()

    _run(tmp_path, body)
