"""The durable outbox: SQLite (WAL, synchronous=FULL) holding seen ids, events and deliveries.

A handler's `enqueue` is one short transaction (INSERT OR IGNORE by id), so the event is on
disk before the handler returns; a worker reads due deliveries back at most LOAD_BATCH at a
time and records outcomes in batches (a delivered row is deleted, and its event once no sink
needs it). A SIGKILL loses nothing committed; a send whose result was not yet recorded is sent
again after a restart (same id: at least once). One connection behind a lock serves the
handler threads and the engine's DB thread alike; every statement is short.

Seen ids are what stops the level-based extractor from re-emitting: they are kept while some
state can imply them. `retain(uid, ids)` (after each extraction of an object) marks the
object's ids no longer implied as stale, `forget(uid)` (object deleted) marks all of them,
and `prune` deletes ids stale for longer than a grace (default 1 day: a late watch event of
the old state cannot re-imply them). Ids still implied are never pruned.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from mlkube.outbox.metrics import ENQUEUED, FAILED, PENDING
from mlkube.outbox.model import (
    DEFAULT_MAX_EVENTS,
    DEFAULT_REPLAY_WINDOW,
    Due,
    Enqueued,
    Occurrence,
    StoredEvent,
)
from mlkube.outbox.records import SinkDelta, SinkRecord, apply_delta, read_record
from mlkube.outbox.schema import DEAD_LETTER, connect, creation

SEEN_GRACE: Final = 86_400.0
SinkChooser = Callable[[Occurrence], Iterable[str]]


class Outbox:
    """See the module docstring. Thread-safe; `on_enqueue` (set by the engine) is called with
    the sinks that got new deliveries, after the commit."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        replay_window: float = DEFAULT_REPLAY_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.replay_window = replay_window
        self._clock = clock
        self._lock = threading.Lock()
        self._db = connect(self.path)
        # A new volume (fresh): the replay window applies from its creation (§4).
        self.created_at, self.fresh = creation(self._db, clock())
        self._pending = self._count_pending()
        self.on_enqueue: Callable[[set[str]], None] | None = None
        self._show_pending(set(self._pending))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- the handlers' side -------------------------------------------------------------

    def enqueue(
        self, occurrences: Iterable[Occurrence], sinks: Iterable[str] | SinkChooser
    ) -> Enqueued:
        """Record occurrences not seen before and one pending delivery per wanting sink.
        Idempotent by id; events older than the replay window of the outbox's creation are
        only marked seen (a fresh outbox does not replay the cluster's history)."""
        choose: SinkChooser = sinks if callable(sinks) else _fixed(list(sinks))
        now = self._clock()
        horizon = self.created_at - self.replay_window
        new = seen_only = 0
        woken: set[str] = set()
        types: list[str] = []
        dropped: dict[str, int] = {}
        with self._transaction():
            for occ in occurrences:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO seen (id, uid, at) VALUES (?, ?, ?)",
                    (occ.id, occ.uid, now),
                )
                if cur.rowcount == 0:
                    continue
                targets = [] if occ.time < horizon else sorted(set(choose(occ)))
                if not targets:
                    seen_only += 1
                    continue
                self._db.execute(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                    (occ.id, occ.type, occ.payload, now),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO deliveries (event_id, sink, next_at) VALUES (?, ?, ?)",
                    [(occ.id, sink, now) for sink in targets],
                )
                for sink in targets:
                    self._pending[sink] = self._pending.get(sink, 0) + 1
                woken.update(targets)
                types.append(occ.type)
                new += 1
            dropped = self._enforce_bound()
        for type_ in types:
            ENQUEUED.labels(type_).inc()
        for sink, n in dropped.items():
            FAILED.labels(sink, "overflow").inc(n)
        self._show_pending(woken | set(dropped))
        if woken and self.on_enqueue is not None:
            self.on_enqueue(woken)
        return Enqueued(new, seen_only, sum(dropped.values()))

    def _enforce_bound(self) -> dict[str, int]:
        """Drop the oldest deliveries beyond max_events (in the caller's transaction)."""
        excess = sum(self._pending.values()) - self.max_events
        if excess <= 0:
            return {}
        rows = self._db.execute(
            "DELETE FROM deliveries WHERE seq IN "
            "(SELECT seq FROM deliveries ORDER BY seq LIMIT ?) RETURNING sink, event_id",
            (excess,),
        ).fetchall()
        dropped: dict[str, int] = {}
        for sink, _ in rows:
            dropped[sink] = dropped.get(sink, 0) + 1
            self._pending[sink] -= 1
        self._delete_orphans(event_id for _, event_id in rows)
        return dropped

    def retain(self, uid: str, implied_ids: Iterable[str]) -> None:
        """The object `uid` now implies exactly `implied_ids`: its other seen ids may go after
        the grace, and ids implied again are kept."""
        ids = list(implied_ids)
        marks = ",".join("?" * len(ids))
        now = self._clock()
        with self._transaction():
            self._db.execute(
                f"UPDATE seen SET stale_at=? WHERE uid=? AND stale_at IS NULL "
                f"AND id NOT IN ({marks})",
                (now, uid, *ids),
            )
            if ids:
                self._db.execute(
                    f"UPDATE seen SET stale_at=NULL WHERE uid=? AND stale_at IS NOT NULL "
                    f"AND id IN ({marks})",
                    (uid, *ids),
                )

    def forget(self, uid: str) -> None:
        """The object is deleted: its seen ids go after the grace."""
        self.retain(uid, ())

    def prune(self, grace: float = SEEN_GRACE) -> int:
        """Delete seen ids stale for longer than `grace`; returns how many."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM seen WHERE stale_at IS NOT NULL AND stale_at < ?",
                (self._clock() - grace,),
            )
            return cur.rowcount

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {sink: n for sink, n in self._pending.items() if n}

    def seen_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])

    def drop_sink(self, sink: str) -> int:
        """A sink was deleted: its pending deliveries and record go; returns how many."""
        with self._transaction():
            rows = self._db.execute(
                "DELETE FROM deliveries WHERE sink=? RETURNING event_id", (sink,)
            ).fetchall()
            self._delete_orphans(r[0] for r in rows)
            self._db.execute("DELETE FROM sinks WHERE sink=?", (sink,))
            self._pending.pop(sink, None)
        if rows:
            FAILED.labels(sink, "sink_deleted").inc(len(rows))
        with contextlib.suppress(KeyError):  # never shown
            PENDING.remove(sink)
        return len(rows)

    # --- the workers' side --------------------------------------------------------------

    def due(self, sink: str, now: float, limit: int, exclude: set[int]) -> list[Due]:
        """Up to `limit` deliveries of `sink` due at `now`, oldest first, not in `exclude`
        (in flight)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT d.seq, d.target, d.attempts, e.enqueued_at, e.id, e.type, e.payload "
                "FROM deliveries d JOIN events e ON e.id = d.event_id "
                "WHERE d.sink=? AND d.next_at<=? ORDER BY d.next_at, d.seq LIMIT ?",
                (sink, now, limit + len(exclude)),
            ).fetchall()
        out = [
            Due(seq, sink, target, attempts, at, StoredEvent(eid, etype, payload))
            for seq, target, attempts, at, eid, etype, payload in rows
            if seq not in exclude
        ]
        return out[:limit]

    def next_due(self, sink: str, after: float) -> float | None:
        """When the sink's next delivery is due after `after` (those due now are loaded)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_at) FROM deliveries WHERE sink=? AND next_at>?", (sink, after)
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def settle(
        self,
        sink: str,
        *,
        done: Iterable[int] = (),
        retry: Iterable[tuple[int, int, float]] = (),
        dead_letter: Iterable[tuple[int, float]] = (),
        delta: SinkDelta | None = None,
    ) -> None:
        """Record a batch of outcomes in one transaction: `done` rows (delivered or given up)
        are deleted, `retry` rows get (attempts, next_at), `dead_letter` rows move to the dead
        letter sink at next_at with attempts reset, and `delta` goes into the sink's record.
        Rows dropped meanwhile (bound, sink deleted) are skipped."""
        seqs = [(seq,) for seq in done]
        with self._transaction():
            event_ids = [
                row[0]
                for seq in seqs
                for row in self._db.execute(
                    "DELETE FROM deliveries WHERE seq=? RETURNING event_id", seq
                ).fetchall()
            ]
            self._db.executemany(
                "UPDATE deliveries SET attempts=?, next_at=? WHERE seq=?",
                [(attempts, at, seq) for seq, attempts, at in retry],
            )
            self._db.executemany(
                f"UPDATE deliveries SET target={DEAD_LETTER}, attempts=0, next_at=? WHERE seq=?",
                [(at, seq) for seq, at in dead_letter],
            )
            self._delete_orphans(event_ids)
            if delta is not None:
                apply_delta(self._db, sink, delta)
            # With the rows, under the lock: state() never sees the record ahead of the count.
            self._pending[sink] = self._pending.get(sink, 0) - len(event_ids)
        self._show_pending({sink})

    def record(self, sink: str) -> SinkRecord:
        return self.status(sink)[0]

    def status(self, sink: str) -> tuple[SinkRecord, int]:
        """The sink's record and pending count, consistent with each other."""
        with self._lock:
            return read_record(self._db, sink), self._pending.get(sink, 0)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Under the lock, one IMMEDIATE transaction; in-memory counts re-read on rollback."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                self._pending = self._count_pending()
                raise
            self._db.execute("COMMIT")

    def _delete_orphans(self, event_ids: Iterable[str]) -> None:
        self._db.executemany(
            "DELETE FROM events WHERE id=? AND NOT EXISTS "
            "(SELECT 1 FROM deliveries WHERE event_id=?)",
            [(eid, eid) for eid in set(event_ids)],
        )

    def _show_pending(self, sinks: set[str]) -> None:
        for sink in sinks:
            PENDING.labels(sink).set(self._pending.get(sink, 0))

    def _count_pending(self) -> dict[str, int]:
        rows = self._db.execute("SELECT sink, COUNT(*) FROM deliveries GROUP BY sink")
        return {str(sink): int(n) for sink, n in rows.fetchall()}


def _fixed(sinks: list[str]) -> SinkChooser:
    return lambda _occ: sinks
