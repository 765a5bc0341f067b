"""One sink's delivery worker: a loader, up to `concurrency` sends in flight, a recorder.

The loader reads due rows (at most LOAD_BATCH held in memory, in flight included) and starts a
task per row; the tasks share a semaphore of the sink's concurrency, and before each send wait
out a 429 pause (it holds for the whole sink) or give the row back untouched if the sink is
gone. Outcomes go to a list that the recorder writes in one transaction per batch (one fsync
for many deliveries); a row leaves the in-flight set only once its outcome is on disk, so it
is never loaded twice. Database calls run on the engine's single DB thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from mlkube.events.encode import SIGNATURE_HEADER, SIGNATURE_TIMESTAMP_HEADER, signature
from mlkube.outbox.decide import Action, Decision, decide
from mlkube.outbox.metrics import DELIVERED, DELIVERY_SECONDS, FAILED
from mlkube.outbox.model import LOAD_BATCH, Due, Encoder, Failure, SinkConfig
from mlkube.outbox.records import SinkDelta, SinkRecord
from mlkube.outbox.schema import PRIMARY
from mlkube.outbox.store import Outbox
from mlkube.outbox.transport import Answer, post

DbRunner = Callable[..., Awaitable[Any]]
RETRY_AFTER_ERROR: Final = 1.0  # seconds, after an unexpected error (a full disk, a bug)
IDLE_RECHECK: Final = 30.0  # seconds; wakes also come from enqueue and settled outcomes
DEAD_LETTER_HEADER: Final = "X-Mlkube-Dead-Letter"  # names the sink that gave up
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    row: Due
    decision: Decision | None  # None: not sent (gone, unencodable)
    answer: Answer | None
    at: float
    unencodable: bool = False


class SinkWorker:
    def __init__(
        self,
        sink: SinkConfig,
        record: SinkRecord,
        outbox: Outbox,
        db: DbRunner,
        session: aiohttp.ClientSession,
        encoder: Encoder,
        clock: Callable[[], float],
    ) -> None:
        self.sink = sink
        self._outbox, self._db, self._session = outbox, db, session
        self._encoder, self._clock = encoder, clock
        self.throttled_until = record.throttled_until or 0.0
        self.gone = record.gone_fingerprint is not None and record.gone_fingerprint == (
            sink.fingerprint
        )
        self._clear_gone = record.gone_fingerprint is not None and not self.gone
        self._semaphore = asyncio.Semaphore(max(sink.concurrency, 1))
        self._wake = asyncio.Event()
        self._settle_wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._outcomes: list[Outcome] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def reconfigure(self, sink: SinkConfig) -> None:
        """A changed spec: a gone sink is tried again; new concurrency for new sends."""
        if sink.fingerprint != self.sink.fingerprint and self.gone:
            self.gone, self._clear_gone = False, True
        if sink.concurrency != self.sink.concurrency:
            self._semaphore = asyncio.Semaphore(max(sink.concurrency, 1))
        self.sink = sink
        self._settle_wake.set()
        self._wake.set()

    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_loop(), name=f"outbox-record:{self.sink.key}")
        try:
            while True:
                try:
                    await self._load_loop()
                except Exception:  # e.g. the disk: the rows are safe, try again shortly
                    log.exception("loading deliveries for sink %s", self.sink.key)
                    await asyncio.sleep(RETRY_AFTER_ERROR)
        finally:
            recorder.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(recorder, *self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):  # a clean stop records what finished
                await self._flush()

    async def _load_loop(self) -> None:
        key = self.sink.key
        while True:
            self._wake.clear()
            now = self._clock()
            if self.gone:
                await self._wake.wait()
                continue
            if self.throttled_until > now:
                await self._sleep(self.throttled_until - now)
                continue
            room = LOAD_BATCH - len(self._inflight)
            if room <= 0:
                await self._wake.wait()  # the recorder wakes us when rows settle
                continue
            rows: list[Due] = await self._db(self._outbox.due, key, now, room, set(self._inflight))
            for row in rows:
                self._inflight.add(row.seq)
                task = asyncio.create_task(self._send(row))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if len(rows) == room:
                continue
            upcoming = await self._db(self._outbox.next_due, key, now)
            await self._sleep(IDLE_RECHECK if upcoming is None else upcoming - now)

    async def _sleep(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives as the wake-up does, and the worker would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(min(seconds, IDLE_RECHECK), 0)):
                await self._wake.wait()

    async def _send(self, row: Due) -> None:
        try:
            outcome = await self._attempt(row)
        except Exception as err:  # a bug or a bad payload: retried with the backoff, bounded
            log.exception("sending event %s to %s", row.event.id, self.sink.key)
            now, answer = self._clock(), Answer(None, message=f"internal error: {err!r}")
            outcome = Outcome(
                row, decide(self.sink, row.target, row.attempts, answer, now), answer, now
            )
        self._outcomes.append(outcome)
        self._settle_wake.set()

    async def _attempt(self, row: Due) -> Outcome:
        async with self._semaphore:
            while not self.gone and (wait := self.throttled_until - self._clock()) > 0:
                await asyncio.sleep(wait)
            sink = self.sink
            target = sink.target if row.target == PRIMARY else sink.dead_letter
            if self.gone or target is None:
                return Outcome(row, None, None, self._clock(), unencodable=target is None)
            encoded = self._encoder(row.event, sink)
            if encoded is None:
                return Outcome(row, None, None, self._clock(), unencodable=True)
            headers = dict(encoded.headers)
            if row.target != PRIMARY:
                headers[DEAD_LETTER_HEADER] = sink.key
            if sink.signing_key is not None:
                stamp = int(self._clock())
                headers[SIGNATURE_TIMESTAMP_HEADER] = str(stamp)
                headers[SIGNATURE_HEADER] = signature(sink.signing_key, stamp, encoded.body)
            answer = await post(self._session, target.url, headers, encoded.body, sink.timeout)
            now = self._clock()
            decision = decide(sink, row.target, row.attempts, answer, now)
            if decision.pause_until is not None:
                self.throttled_until = max(self.throttled_until, decision.pause_until)
            if decision.action is Action.KEEP:
                self.gone = True
            return Outcome(row, decision, answer, now)

    async def _record_loop(self) -> None:
        while True:
            await self._settle_wake.wait()
            self._settle_wake.clear()
            try:
                await self._flush()
            except Exception:  # the outcomes went back to the list: retried shortly
                log.exception("recording outcomes for sink %s", self.sink.key)
                await asyncio.sleep(RETRY_AFTER_ERROR)
                self._settle_wake.set()

    async def _flush(self) -> None:
        """Write the finished outcomes in one transaction, then release their rows."""
        batch, self._outcomes = self._outcomes, []
        clear_gone, self._clear_gone = self._clear_gone, False
        delta = self._delta(batch, clear_gone)
        if not batch and delta.empty():
            return
        done, retry, dead = [], [], []
        for o in batch:
            d = o.decision
            if o.unencodable or (d is not None and d.action is Action.DONE):
                done.append(o.row.seq)
            elif d is not None and d.action is Action.RETRY:
                retry.append((o.row.seq, d.attempts, d.next_at))
            elif d is not None and d.action is Action.DEAD_LETTER:
                dead.append((o.row.seq, d.next_at))
        try:
            await self._db(
                self._outbox.settle, self.sink.key, done=done, retry=retry, dead_letter=dead,
                delta=delta,
            )  # fmt: skip
        except BaseException:
            self._outcomes[:0] = batch
            self._clear_gone = self._clear_gone or clear_gone
            raise
        self._count(batch)
        for o in batch:
            self._inflight.discard(o.row.seq)
        self._wake.set()

    def _delta(self, batch: list[Outcome], clear_gone: bool) -> SinkDelta:
        delta = SinkDelta(clear_gone=clear_gone)
        for o in batch:
            d, answer = o.decision, o.answer
            if d is None or answer is None:
                continue
            if d.action is Action.DONE and d.failed_reason is None:
                if o.row.target == PRIMARY:
                    delta.delivered += 1
                    delta.last_delivered_at = o.at
                continue
            if o.row.target == PRIMARY:
                delta.last_failure = Failure(o.at, answer.status, answer.message)
                if d.failed_reason is not None:
                    delta.failed += 1
            if d.pause_until is not None:
                delta.throttled_until = max(delta.throttled_until or 0.0, d.pause_until)
            if d.action is Action.KEEP:
                delta.gone = self.sink.fingerprint
        return delta

    def _count(self, batch: list[Outcome]) -> None:
        key = self.sink.key
        for o in batch:
            d = o.decision
            if d is None:
                continue
            if d.failed_reason is not None:
                FAILED.labels(key, d.failed_reason).inc()
            elif d.action is Action.DONE and o.row.target == PRIMARY:
                DELIVERED.labels(key).inc()
                DELIVERY_SECONDS.labels(key).observe(max(o.at - o.row.enqueued_at, 0.0))
