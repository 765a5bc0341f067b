"""Coalesced background work per key: a burst of watch events makes one pending pass, not one
per event, and the watch reaction that asks for it returns at once.

Kopf runs an object's events one after another in that object's worker, and the events that
arrive while a handler awaits wait in the worker's backlog as full bodies. A reaction that
awaited its refresh (a thread hop behind every other refresh of the burst) kept every
Deployment's backlog of bodies alive meanwhile: the operator's memory peak while converging
(docs/benchmarks/operator-scale.md, "Memory, round 3"). Here a request only records the key
(strings, never a body); the pass re-reads what it needs.

No request is lost: a request while the key's pass waits to start is covered by it (the pass
reads after the request); a request while the pass runs makes it run once more after that.
Everything but the pass itself runs in the event loop's thread, so the checks need no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, Generic, TypeVar

from mlkube.handlers.task_context import detached

K = TypeVar("K", bound=Hashable)


class Coalesced(Generic[K]):
    """At most one task per key; it runs `work(key, since)` in a thread `delay` s after the
    first request (the rest of the burst arrives meanwhile), and again while requests came in
    during a run; at most `limit` keys run at once. `since` is the `time.monotonic()` of the
    latest request the run covers: only a pass that began after it saw everything the run
    must see (the earliest would let a pass that began between two requests cover the later).
    `on_error(key, err)` sees an Exception of `work`; the task then ends."""

    def __init__(
        self, name: str, work: Callable[[K, float], None], delay: float,
        on_error: Callable[[K, Exception], None], limit: int = 2,
    ) -> None:  # fmt: skip
        self.name: Final = name
        self._work = work
        self._delay = delay
        self._on_error = on_error
        self._limit = limit
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._tasks: dict[K, asyncio.Task[None]] = {}
        self._running: set[K] = set()
        self._again: set[K] = set()
        self._since: dict[K, float] = {}  # key -> its latest request no run has taken up
        self._pool: ThreadPoolExecutor | None = None  # shared by every loop (tests restart Kopf)
        self._loop: asyncio.AbstractEventLoop | None = None  # where request_later arms timers
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop `request_later` arms its timers in (the operator's, at start)."""
        self._loop = loop

    def request_later(self, key: K, delay: float, still: Callable[[K], bool]) -> None:
        """From any thread: ask for a pass of `key` in `delay` s if `still(key)` holds then.
        One timer per key (a new one replaces it); nothing happens before `bind`."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: exiting
            # Detached: the callback and its timer (up to minutes) copy the caller's context,
            # which in a handler's thread holds the event's body.
            loop.call_soon_threadsafe(self._arm, key, delay, still, context=detached())

    def _arm(self, key: K, delay: float, still: Callable[[K], bool]) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key, still)

    def _fire(self, key: K, still: Callable[[K], bool]) -> None:
        self._timers.pop(key, None)
        if still(key):
            self.request(key)

    def request(self, key: K) -> None:
        """Ask for a pass of `key` that starts reading after now (from the event loop)."""
        loop = asyncio.get_running_loop()
        task = self._tasks.get(key)
        self._since[key] = time.monotonic()
        if task is not None and not task.done() and task.get_loop() is loop:
            if key in self._running:
                self._again.add(key)
            return
        self._running.discard(key)  # left by a task of a closed loop (tests restart Kopf)
        self._again.discard(key)
        # Detached: a waiting pass must not hold the requesting event's body (Kopf's cause).
        self._tasks[key] = loop.create_task(
            self._run(key), name=f"mlkube {self.name}", context=detached()
        )

    async def _run(self, key: K) -> None:
        try:
            while True:
                await asyncio.sleep(self._delay)
                async with self._slots_of_loop():  # still covers requests while it waits
                    self._running.add(key)
                    since = self._since.pop(key, time.monotonic())
                    try:
                        await self._in_thread(key, since)
                    except Exception as err:  # reported; the next request runs again
                        self._on_error(key, err)
                    finally:
                        self._running.discard(key)
                if key not in self._again:
                    return
                self._again.discard(key)
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
                self._since.pop(key, None)  # a cancelled wait

    async def _in_thread(self, key: K, since: float) -> None:
        """`work` in this coalescer's own threads (`limit` of them), not the loop's default
        executor: passes wait for endpoint locks and API calls, and must never hold the threads
        every other `asyncio.to_thread` of the operator (resync ticks, releases, notifications)
        shares."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._limit, thread_name_prefix=f"mlkube-{self.name}")
        call = functools.partial(contextvars.copy_context().run, self._work, key, since)
        await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _slots_of_loop(self) -> asyncio.Semaphore:
        """At most `limit` passes read at once: a burst's responses are parsed a few at a time
        (each pass holds its reads while it runs), the rest wait as keys."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._limit))
        return self._slots[1]

    def pending(self) -> int:
        """Keys with a pass waiting or running."""
        return sum(not t.done() for t in self._tasks.values())

    async def drain(self) -> None:
        """Until no pass waits or runs in this loop (tests; the operator never waits)."""
        loop = asyncio.get_running_loop()
        while tasks := [t for t in self._tasks.values() if not t.done() and t.get_loop() is loop]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every pass of this loop (the operator is exiting); forget the others."""
        loop = asyncio.get_running_loop()
        tasks = [t for t in self._tasks.values() if t.get_loop() is loop]
        self._tasks.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._loop = None  # passes still finishing in the pool arm nothing more
        self._running.clear()
        self._again.clear()
        self._since.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
