"""Coalesced passes: a burst of requests makes one pass; a request while the pass runs makes
exactly one more (no lost refresh); a failure is reported and the next request runs again."""

from __future__ import annotations

import asyncio
import threading
import time

from mlkube.handlers.coalesce import Coalesced


def recorder(
    gate: threading.Event | None = None, started: threading.Event | None = None
) -> tuple[list[str], Coalesced[str]]:
    runs: list[str] = []

    def work(key: str, since: float) -> None:
        runs.append(key)
        if started is not None:
            started.set()
        if gate is not None and len(runs) == 1:
            assert gate.wait(5)

    errors: list[tuple[str, Exception]] = []
    return runs, Coalesced("test", work, 0.01, lambda k, e: errors.append((k, e)))


def test_a_burst_of_requests_costs_one_pass_per_key() -> None:
    runs, passes = recorder()

    async def burst() -> None:
        for _ in range(50):
            passes.request("a")
            passes.request("b")
        assert passes.pending() == 2
        await passes.drain()

    asyncio.run(burst())
    assert sorted(runs) == ["a", "b"]
    assert passes.pending() == 0


def test_a_request_while_the_pass_runs_makes_one_more_pass() -> None:
    gate, started = threading.Event(), threading.Event()
    runs, passes = recorder(gate, started)

    async def scenario() -> None:
        passes.request("a")
        while not started.is_set():  # the first pass is reading now
            await asyncio.sleep(0.005)
        for _ in range(5):  # changes it may have missed: one more pass covers them all
            passes.request("a")
        gate.set()
        await passes.drain()

    asyncio.run(scenario())
    assert runs == ["a", "a"]


def test_a_request_after_the_pass_ran_runs_again() -> None:
    runs, passes = recorder()

    async def scenario() -> None:
        passes.request("a")
        await passes.drain()
        passes.request("a")
        await passes.drain()

    asyncio.run(scenario())
    assert runs == ["a", "a"]


def test_a_failing_pass_is_reported_and_the_next_request_runs() -> None:
    calls: list[str] = []
    errors: list[tuple[str, str]] = []

    def work(key: str, since: float) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("boom")

    passes: Coalesced[str] = Coalesced("t", work, 0.0, lambda k, e: errors.append((k, str(e))))

    async def scenario() -> None:
        passes.request("a")
        await passes.drain()
        passes.request("a")
        await passes.drain()

    asyncio.run(scenario())
    assert calls == ["a", "a"] and errors == [("a", "boom")]


def test_a_task_of_a_closed_loop_does_not_swallow_requests() -> None:
    runs, passes = recorder()

    async def request_and_leave() -> None:
        passes.request("a")  # the loop ends before the pass runs (a restarted operator)

    asyncio.run(request_and_leave())

    async def again() -> None:
        passes.request("a")
        await passes.drain()

    asyncio.run(again())
    assert runs == ["a"]


def test_close_cancels_waiting_passes() -> None:
    runs, passes = recorder()

    async def scenario() -> None:
        passes.request("a")
        await passes.close()
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert runs == [] and passes.pending() == 0


def test_at_most_limit_passes_run_at_once() -> None:
    lock = threading.Lock()
    running = [0]
    most = [0]
    done: list[str] = []

    def work(key: str, since: float) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.02)
        with lock:
            running[0] -= 1
            done.append(key)

    passes: Coalesced[str] = Coalesced("t", work, 0.0, lambda k, e: None, limit=2)

    async def burst() -> None:
        for i in range(8):
            passes.request(str(i))
        await passes.drain()

    asyncio.run(burst())
    assert sorted(done) == [str(i) for i in range(8)] and most[0] == 2


def test_a_pass_is_told_the_latest_request_it_covers() -> None:
    """A pass that began between two requests of one burst saw the first, not the second: the
    run must be told the second (the lost readiness of issue 15's first restart attempt)."""
    seen: list[float] = []
    gate, started = threading.Event(), threading.Event()

    def work(key: str, since: float) -> None:
        seen.append(since)
        started.set()
        if len(seen) == 1:
            assert gate.wait(5)

    passes: Coalesced[str] = Coalesced("t", work, 0.01, lambda k, e: None)

    async def scenario() -> tuple[float, float, float]:
        passes.request("a")
        await asyncio.sleep(0.002)
        second = time.monotonic()
        passes.request("a")  # same burst: the pass covers it, and must read after it
        while not started.is_set():
            await asyncio.sleep(0.002)
        during = time.monotonic()
        passes.request("a")  # while the pass reads: the next pass covers it from here
        gate.set()
        await passes.drain()
        return second, during, time.monotonic()

    second, during, end = asyncio.run(scenario())
    assert len(seen) == 2
    assert second <= seen[0] < during, (second, seen, during)
    assert during <= seen[1] <= end, (during, seen, end)


def test_a_request_after_a_closed_loop_is_covered_from_its_own_time() -> None:
    """A restarted operator's first request: what a task of the closed loop left must not make
    the new pass look covered by older reads."""
    seen: list[float] = []
    passes: Coalesced[str] = Coalesced("t", lambda k, since: seen.append(since), 0.01,
                                       lambda k, e: None)  # fmt: skip

    async def request_and_leave() -> None:
        passes.request("a")  # the loop ends before the pass runs

    asyncio.run(request_and_leave())
    restarted = time.monotonic()

    async def again() -> None:
        passes.request("a")
        await passes.drain()

    asyncio.run(again())
    assert len(seen) == 1 and seen[0] >= restarted, (seen, restarted)


def test_passes_run_in_their_own_threads_not_the_loops_default_executor() -> None:
    """Passes wait for locks and API calls: they must not hold the threads every other
    `asyncio.to_thread` of the operator shares (and `limit` of them at most)."""
    names: list[str] = []
    gate = threading.Event()

    def work(key: str, since: float) -> None:
        names.append(threading.current_thread().name)
        assert gate.wait(5)

    passes: Coalesced[str] = Coalesced("refresh", work, 0.0, lambda k, e: None, limit=2)

    async def scenario() -> str:
        for key in "abcd":
            passes.request(key)
        while len(names) < 2:
            await asyncio.sleep(0.005)
        # Every pass slot is busy; the default executor still answers at once.
        other = await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 1.0)
        gate.set()
        await passes.drain()
        return other

    assert asyncio.run(scenario()) == "free"
    assert len(names) == 4 and all(n.startswith("mlkube-refresh") for n in names), names
