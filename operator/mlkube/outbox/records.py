"""Per-sink delivery records in the outbox: counters and last outcomes, so a sink's status
(delivered, failed, lastDeliveredAt, lastFailure, throttledUntil, gone) survives a restart.

Written in the same transaction as the deliveries they describe (Outbox.settle).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from mlkube.outbox.model import Failure


@dataclass
class SinkDelta:
    """Changes to one sink's record from a batch of outcomes. `gone` set: the sink answered
    410 while its spec had that fingerprint; `clear_gone`: its spec changed since."""

    delivered: int = 0
    failed: int = 0
    last_delivered_at: float | None = None
    last_failure: Failure | None = None
    throttled_until: float | None = None
    gone: str | None = None
    clear_gone: bool = False

    def empty(self) -> bool:
        return self == SinkDelta()


@dataclass(frozen=True)
class SinkRecord:
    delivered: int = 0
    failed: int = 0
    last_delivered_at: float | None = None
    last_failure: Failure | None = None
    throttled_until: float | None = None
    gone_fingerprint: str | None = None


def apply_delta(db: sqlite3.Connection, sink: str, delta: SinkDelta) -> None:
    """Add `delta` to the sink's record (inside the caller's transaction)."""
    if delta.empty():
        return
    db.execute("INSERT OR IGNORE INTO sinks (sink) VALUES (?)", (sink,))
    db.execute(
        "UPDATE sinks SET delivered = delivered + ?, failed = failed + ?, "
        "last_delivered_at = COALESCE(?, last_delivered_at) WHERE sink=?",
        (delta.delivered, delta.failed, delta.last_delivered_at, sink),
    )
    if delta.last_failure is not None:
        f = delta.last_failure
        db.execute(
            "UPDATE sinks SET failure_time=?, failure_status=?, failure_message=? WHERE sink=?",
            (f.time, f.status, f.message[:500], sink),
        )
    if delta.throttled_until is not None:
        db.execute("UPDATE sinks SET throttled_until=? WHERE sink=?", (delta.throttled_until, sink))
    if delta.clear_gone:
        db.execute("UPDATE sinks SET gone_fingerprint=NULL WHERE sink=?", (sink,))
    if delta.gone is not None:
        db.execute("UPDATE sinks SET gone_fingerprint=? WHERE sink=?", (delta.gone, sink))


def read_record(db: sqlite3.Connection, sink: str) -> SinkRecord:
    row = db.execute(
        "SELECT delivered, failed, last_delivered_at, failure_time, failure_status, "
        "failure_message, throttled_until, gone_fingerprint FROM sinks WHERE sink=?",
        (sink,),
    ).fetchone()
    if row is None:
        return SinkRecord()
    delivered, failed, last_at, f_time, f_status, f_message, throttled, gone = row
    failure = None if f_time is None else Failure(f_time, f_status, f_message or "")
    return SinkRecord(delivered, failed, last_at, failure, throttled, gone)
