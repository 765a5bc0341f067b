"""The values the outbox and the delivery engine exchange with their callers.

Kept apart from the SQLite and HTTP code so the handlers (which enqueue and read sink state)
and the encoder (helper `nevents`: CloudEvents binary/structured, azureml) see only data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from mlkube.events.encode import Format, Mode

BackoffPolicy = Literal["exponential", "linear"]

DEFAULT_RETRY: Final = 10
DEFAULT_BACKOFF_DELAY: Final = 0.5  # seconds (Knative's backoffDelay, PT0.5S)
DEFAULT_TIMEOUT: Final = 10.0  # seconds per request
DEFAULT_CONCURRENCY: Final = 4
DEFAULT_MAX_EVENTS: Final = 100_000  # pending deliveries, MLKUBE_OUTBOX_MAX_EVENTS
DEFAULT_REPLAY_WINDOW: Final = 600.0  # MLKUBE_EVENTS_REPLAY_WINDOW, seconds
LOAD_BATCH: Final = 256  # rows a sink worker holds in memory at most


@dataclass(frozen=True)
class Occurrence:
    """One event to enqueue: its stable id (consumers deduplicate on it), its CloudEvents type,
    the transition time from the object's status (unix seconds; the replay window compares it),
    the object's uid (seen ids are pruned per object) and the payload the encoder reads."""

    id: str
    type: str
    time: float
    uid: str
    payload: bytes


@dataclass(frozen=True)
class StoredEvent:
    """An event as a worker reads it back from the outbox."""

    id: str
    type: str
    payload: bytes


@dataclass(frozen=True)
class Due:
    """A delivery a worker may send now."""

    seq: int
    sink: str
    target: int
    attempts: int
    enqueued_at: float
    event: StoredEvent


@dataclass(frozen=True)
class Target:
    """Where requests go: the resolved URL (a Service reference is resolved by the caller)."""

    url: str


@dataclass(frozen=True)
class SinkConfig:
    """A sink as the delivery engine needs it. `key` names it in the outbox, the metrics and
    the state ("namespace/name", or "default" for the operator's sink); `fingerprint` changes
    whenever its spec does (a sink that answered 410 is retried only after that)."""

    key: str
    target: Target
    fingerprint: str = ""
    mode: Mode = "binary"
    format: Format = "cloudevents"
    retry: int = DEFAULT_RETRY
    backoff_policy: BackoffPolicy = "exponential"
    backoff_delay: float = DEFAULT_BACKOFF_DELAY
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    dead_letter: Target | None = None
    signing_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Encoded:
    """One HTTP request's headers and body."""

    headers: Mapping[str, str]
    body: bytes


# (event, sink) -> request, or None when this sink does not take the event (e.g. a type with
# no azureml equivalent): the delivery is then dropped without counting as a failure.
Encoder = Callable[[StoredEvent, SinkConfig], Encoded | None]


@dataclass(frozen=True)
class Failure:
    """The last failed attempt: when, the HTTP status (None: no answer), and why."""

    time: float
    status: int | None
    message: str


@dataclass(frozen=True)
class SinkState:
    """What the sink's status and metrics show (counters persist in the outbox)."""

    delivered: int = 0
    failed: int = 0
    pending: int = 0
    last_delivered_at: float | None = None
    last_failure: Failure | None = None
    throttled_until: float | None = None
    gone: bool = False


@dataclass(frozen=True)
class Enqueued:
    """What one `enqueue` call did: events new to the outbox, events only marked seen (older
    than the replay window of a fresh outbox, or wanted by no sink), deliveries dropped to stay
    under the bound."""

    new: int = 0
    seen_only: int = 0
    overflow_dropped: int = 0
