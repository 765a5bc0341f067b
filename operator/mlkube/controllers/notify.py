"""From watched objects to the outbox (docs/notifications.md §3): the glue between the pure
extractor (mlkube.events) and the durable outbox (mlkube.outbox).

Each watch event of a Model, OnlineEndpoint, BatchJob or PipelineRun runs the extractor; the
occurrences go to the outbox only when the object implies an id this process has not recorded
yet (a status write that changes nothing implies the same ids: no SQLite transaction). The
outbox itself ignores ids it has seen (`seen` table), so after a restart the first listing
re-offers everything and only what was never enqueued is new. Synchronous: handlers call it in
a thread (one short transaction, fsync'd), never on the event loop.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from mlkube.events.encode import encode_payload
from mlkube.events.extract import deletion_events, implied_events
from mlkube.events.occurrence import EXT_UID, Occurrence, epoch_seconds, to_payload
from mlkube.outbox.model import Encoded, Enqueued, SinkConfig, StoredEvent
from mlkube.outbox.model import Occurrence as Queued
from mlkube.outbox.store import Outbox

# An event's type and the namespace it is about -> the keys of the sinks that want it.
Chooser = Callable[[str, str], Iterable[str]]
MEMO_LIMIT: Final = 100_000  # objects remembered; beyond it the memo starts over (re-offers)


def encode_stored(event: StoredEvent, sink: SinkConfig) -> Encoded | None:
    """The engine's encoder: the stored structured CloudEvent, re-encoded for the sink's mode
    and format (None: an azureml sink has no counterpart of this type)."""
    message = encode_payload(event.payload, sink.mode, sink.format)
    return None if message is None else Encoded(message.headers, message.body)


def queued(occurrence: Occurrence, now: float) -> Queued:
    """The outbox's form: id, type, time (`now` when the status has none), uid, payload."""
    when = epoch_seconds(occurrence.time)
    return Queued(
        id=occurrence.id,
        type=occurrence.type,
        time=now if when is None else when,
        uid=str(occurrence.extensions.get(EXT_UID, "")),
        payload=to_payload(occurrence),
    )


class Notifier:
    """Offers each object's implied events to the outbox; remembers what it offered."""

    def __init__(self, outbox: Outbox, clock: Callable[[], float]) -> None:
        self.outbox = outbox
        self._clock = clock
        self._offered: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def notice(self, kind: str, obj: Mapping[str, Any], choose: Chooser) -> Enqueued | None:
        """An object as a watch event delivered it (not deleted). None: nothing new."""
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        occurrences = implied_events(kind, obj)
        ids = frozenset(o.id for o in occurrences)
        with self._lock:
            if not uid or self._offered.get(uid) == ids:
                return None
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        done = self._enqueue(occurrences, namespace, choose)
        self.outbox.retain(uid, ids)
        with self._lock:
            if len(self._offered) >= MEMO_LIMIT:
                self._offered.clear()
            self._offered[uid] = ids
        return done

    def deleted(self, kind: str, obj: Mapping[str, Any], choose: Chooser) -> Enqueued:
        """The object is gone (its last state): deletion events, and its seen ids may go."""
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        now = self._clock()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        occurrences = deletion_events(kind, obj, stamp)
        done = self._enqueue(occurrences, str(meta.get("namespace") or ""), choose)
        if uid:
            self.outbox.forget(uid)
            with self._lock:
                self._offered.pop(uid, None)
        return done

    def _enqueue(self, occurrences: list[Occurrence], namespace: str, choose: Chooser) -> Enqueued:
        if not occurrences:
            return Enqueued()
        now = self._clock()
        return self.outbox.enqueue(
            [queued(o, now) for o in occurrences], lambda q: choose(q.type, namespace)
        )
