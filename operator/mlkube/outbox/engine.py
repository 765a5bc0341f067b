"""The delivery engine: the outbox plus one worker task per sink on the operator's loop.

Callers (Kopf handlers, sync or async) use three thread-safe calls: `enqueue` (a short SQLite
transaction; it never waits for a sink), `set_sink`/`remove_sink` (applied on the loop), and
`state` (the sink's status). Everything slow — HTTP sends, waits, fsyncs of outcome batches —
happens on the engine's tasks and its single DB thread, so a sink that is down or slow never
slows reconciliation. A maintenance task prunes stale seen ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import aiohttp

from mlkube.events.occurrence import Occurrence as Event
from mlkube.outbox.codec import encode_stored, to_outbox
from mlkube.outbox.model import (
    Encoder,
    Enqueued,
    Occurrence,
    SinkConfig,
    SinkState,
)
from mlkube.outbox.store import SEEN_GRACE, Outbox, SinkChooser
from mlkube.outbox.transport import new_session
from mlkube.outbox.worker import SinkWorker
from mlkube.storage.policy import FetchPolicy

PRUNE_EVERY: Final = 600.0


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        *,
        policy: FetchPolicy,
        encoder: Encoder = encode_stored,
        clock: Callable[[], float] = time.time,
        seen_grace: float = SEEN_GRACE,
    ) -> None:
        self.outbox = outbox
        self._encoder, self._policy, self._clock = encoder, policy, clock
        self._seen_grace = seen_grace
        self._sinks: dict[str, SinkConfig] = {}
        self._workers: dict[str, SinkWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._maintenance: asyncio.Task[None] | None = None

    # --- lifecycle (on the loop) ----------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        self._session = new_session(self._policy)
        self.outbox.on_enqueue = self._woken
        for sink in list(self._sinks.values()):
            await self._start_worker(sink)
        self._maintenance = asyncio.create_task(self._maintain(), name="outbox-maintenance")

    async def stop(self) -> None:
        """Cancel the workers (rows in flight stay pending on disk) and close the session."""
        self.outbox.on_enqueue = None
        tasks = [*self._tasks.values(), *([self._maintenance] if self._maintenance else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._loop = None

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self._loop is not None and self._executor is not None
        return await self._loop.run_in_executor(
            self._executor, functools.partial(fn, *args, **kwargs)
        )

    async def _start_worker(self, sink: SinkConfig) -> None:
        assert self._session is not None
        record = await self._db(self.outbox.record, sink.key)
        worker = SinkWorker(
            sink, record, self.outbox, self._db, self._session, self._encoder, self._clock
        )
        self._workers[sink.key] = worker
        self._tasks[sink.key] = asyncio.create_task(worker.run(), name=f"outbox:{sink.key}")

    async def _maintain(self) -> None:
        while True:
            await self._db(self.outbox.prune, self._seen_grace)
            await asyncio.sleep(PRUNE_EVERY)

    # --- thread-safe calls ----------------------------------------------------------------

    def enqueue(
        self, occurrences: Iterable[Occurrence], sinks: Iterable[str] | SinkChooser
    ) -> Enqueued:
        """Durably record new occurrences for the sinks that want them (see Outbox.enqueue)."""
        return self.outbox.enqueue(occurrences, sinks)

    def enqueue_events(
        self, events: Iterable[Event], sinks: Iterable[str] | Callable[[Event], Iterable[str]]
    ) -> Enqueued:
        """`enqueue` for mlkube.events occurrences (what `implied_events` returns); a chooser
        gets the event itself (type, extensions) to apply the sinks' filters."""
        now = self._clock()
        pairs = [(to_outbox(event, now), event) for event in events]
        if not callable(sinks):
            return self.outbox.enqueue([occ for occ, _ in pairs], sinks)
        by_id = {occ.id: event for occ, event in pairs}
        return self.outbox.enqueue([occ for occ, _ in pairs], lambda occ: sinks(by_id[occ.id]))

    def retain(self, uid: str, implied_ids: Iterable[str]) -> None:
        """After extracting object `uid`: the ids it implies now (the others may be pruned
        after the grace). See Outbox.retain."""
        self.outbox.retain(uid, implied_ids)

    def forget(self, uid: str) -> None:
        """Object `uid` was deleted (after enqueueing its deletion events)."""
        self.outbox.forget(uid)

    def set_sink(self, sink: SinkConfig) -> None:
        """Add or change a sink (a changed fingerprint lifts a 410 stop)."""
        self._sinks[sink.key] = sink
        self._on_loop(self._apply_sink, sink)

    def remove_sink(self, key: str) -> None:
        """Stop delivering to a deleted sink and drop its pending deliveries (counted)."""
        self._sinks.pop(key, None)
        self._on_loop(self._drop_sink, key)

    def state(self, key: str) -> SinkState:
        record = self.outbox.record(key)
        worker = self._workers.get(key)
        throttled = worker.throttled_until if worker is not None else record.throttled_until
        sink = self._sinks.get(key)
        gone = (
            worker.gone
            if worker is not None
            else (sink is not None and record.gone_fingerprint == sink.fingerprint)
        )
        return SinkState(
            delivered=record.delivered,
            failed=record.failed,
            pending=self.outbox.pending().get(key, 0),
            last_delivered_at=record.last_delivered_at,
            last_failure=record.last_failure,
            throttled_until=throttled if throttled and throttled > self._clock() else None,
            gone=gone,
        )

    # --- on the loop ----------------------------------------------------------------------

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return  # applied by start()
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(fn(*args)))

    async def _apply_sink(self, sink: SinkConfig) -> None:
        worker = self._workers.get(sink.key)
        if worker is None:
            await self._start_worker(sink)
        else:
            worker.reconfigure(sink)

    async def _drop_sink(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        self._workers.pop(key, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if key not in self._sinks:  # not re-added meanwhile
            await self._db(self.outbox.drop_sink, key)

    def _woken(self, sinks: set[str]) -> None:
        loop = self._loop
        if loop is None:
            return
        for key in sinks:
            worker = self._workers.get(key)
            if worker is not None:
                loop.call_soon_threadsafe(worker.wake)
