"""The finalizer-free per-object loops: one per key, end when a tick says the object is gone,
survive a failing tick, and stop on request or at operator exit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mlkube.handlers import periodic
from mlkube.handlers.periodic import Loops

log = logging.getLogger("test")


async def settle(loops: Loops, uid: str, jobs: set[str], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while loops.running(uid) != jobs:
            await asyncio.sleep(0.005)


def test_a_loop_ticks_until_the_object_is_gone_and_ensure_never_doubles_it() -> None:
    ticks: list[int] = []

    def tick() -> float | None:
        ticks.append(1)
        return None if len(ticks) == 3 else 0.001  # third tick: the object is gone

    async def scenario() -> None:
        loops = Loops()
        for _ in range(5):
            loops.ensure("uid-1", "resync", tick, 0.0, log)
        assert loops.running("uid-1") == {"resync"}
        await settle(loops, "uid-1", set())

    asyncio.run(scenario())
    assert len(ticks) == 3


def test_a_failing_tick_does_not_end_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(periodic, "ERROR_DELAY", 0.001)
    calls: list[int] = []

    def tick() -> float | None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return None

    async def scenario() -> None:
        loops = Loops()
        loops.ensure("uid-1", "drift", tick, 0.0, log)
        await settle(loops, "uid-1", set())

    asyncio.run(scenario())
    assert len(calls) == 2


def test_stop_ends_one_job_or_all_and_close_ends_everything() -> None:
    async def scenario() -> None:
        loops = Loops()
        forever = lambda: 0.01  # noqa: E731
        for job in ("resync", "drift"):
            loops.ensure("uid-1", job, forever, 0.0, log)
        loops.ensure("uid-2", "resync", forever, 0.0, log)
        loops.stop("uid-1", "drift")
        await settle(loops, "uid-1", {"resync"})
        loops.stop("uid-1")
        await settle(loops, "uid-1", set())
        assert loops.running("uid-2") == {"resync"}
        await loops.close()
        assert loops.running("uid-2") == set()

    asyncio.run(scenario())


def test_a_loop_left_by_a_previous_event_loop_is_replaced() -> None:
    """Tests (and a restarted operator) run Kopf in a new event loop: its loops start afresh."""
    loops = Loops()
    ticks: list[str] = []

    async def start(name: str) -> None:
        loops.ensure("uid-1", "resync", lambda: ticks.append(name) or 0.01, 0.0, log)
        await asyncio.sleep(0.05)

    asyncio.run(start("first"))  # asyncio.run cancels it without a cleanup handler
    asyncio.run(start("second"))
    assert "second" in ticks


def test_loops_started_together_tick_spread_over_the_period() -> None:
    delays = [periodic.spread(f"uid-{i}", 300.0) for i in range(1000)]
    assert all(150.0 <= d <= 300.0 for d in delays)
    assert periodic.spread("uid-7", 300.0) == delays[7]  # fixed per object
    # Spread evenly: every tenth of the window holds some of them, none holds a crowd.
    buckets = [sum(1 for d in delays if 150 + 15 * b <= d < 165 + 15 * b) for b in range(10)]
    assert min(buckets) > 50 and max(buckets) < 150
