"""The bridge between mlkube.events (pure: occurrences and their encodings) and the outbox.

An event is stored as its structured-mode CloudEvent JSON (`events.occurrence.to_payload`) and
encoded per sink at send time (mode binary|structured, format cloudevents|azureml), so one
stored copy serves every sink and a sink's changed mode applies to its backlog too.
"""

from __future__ import annotations

import time

from mlkube.events.encode import encode_payload
from mlkube.events.occurrence import EXT_UID, epoch_seconds, to_payload
from mlkube.events.occurrence import Occurrence as Event
from mlkube.outbox.model import Encoded, Occurrence, SinkConfig, StoredEvent


def to_outbox(event: Event, now: float | None = None) -> Occurrence:
    """What the outbox stores of an event; its time (RFC 3339 from the object's status, now
    when the status recorded none) feeds the replay window."""
    when = epoch_seconds(event.time)
    if when is None:
        when = now if now is not None else time.time()
    uid = str(event.extensions.get(EXT_UID, ""))
    return Occurrence(event.id, event.type, when, uid, to_payload(event))


def encode_stored(stored: StoredEvent, sink: SinkConfig) -> Encoded | None:
    """The request for `sink` (None: an azureml sink gets nothing for this type)."""
    message = encode_payload(stored.payload, sink.mode, sink.format)
    return None if message is None else Encoded(message.headers, message.body)
