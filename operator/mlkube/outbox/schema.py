"""The outbox's SQLite schema and connection settings (docs/notifications.md §4).

WAL lets the handlers' inserts and the workers' reads share the file; synchronous=FULL makes
every commit durable before `enqueue` returns, so a kill or power loss after it loses nothing.
Delivered rows are deleted (and an event once no sink needs it), so the file holds only what
is pending plus the seen ids.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

PRIMARY: Final = 0  # deliveries.target: the sink itself
DEAD_LETTER: Final = 1  # ... its dead letter sink
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (
  id TEXT PRIMARY KEY, uid TEXT NOT NULL, at REAL NOT NULL, stale_at REAL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_uid ON seen (uid);
CREATE INDEX IF NOT EXISTS seen_stale ON seen (stale_at) WHERE stale_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY, type TEXT NOT NULL, payload BLOB NOT NULL, enqueued_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, sink TEXT NOT NULL,
  target INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  next_at REAL NOT NULL, UNIQUE (event_id, sink));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, next_at);
CREATE TABLE IF NOT EXISTS sinks (
  sink TEXT PRIMARY KEY, delivered INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
  last_delivered_at REAL, failure_time REAL, failure_status INTEGER, failure_message TEXT,
  throttled_until REAL, gone_fingerprint TEXT);
"""


def connect(path: Path) -> sqlite3.Connection:
    """One connection for every thread (the Outbox serializes use with its lock); transactions
    are explicit (BEGIN IMMEDIATE ... COMMIT)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def creation(db: sqlite3.Connection, now: float) -> tuple[float, bool]:
    """When this outbox was created, and whether that is now (a fresh volume)."""
    row = db.execute("SELECT value FROM meta WHERE key='created_at'").fetchone()
    if row is not None:
        return float(row[0]), False
    db.execute("INSERT INTO meta VALUES ('created_at', ?)", (repr(now),))
    return now, True
