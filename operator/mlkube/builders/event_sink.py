"""EventSinks, pure: which sinks want an event, where a sink sends (its `ref` resolved), and
its status from the delivery state (docs/notifications.md §1).

No I/O: the handler reads the Service and the signing Secret and passes them in, and reads the
delivery state from the outbox. Status is built whole and compared with the one written, so
the handler writes only on change (and rate-limits those writes: counters move with traffic).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from mlkube.api.common import bound_message
from mlkube.api.event_sink import EventSinkStatus
from mlkube.builders.status_conditions import condition_models
from mlkube.events.catalogue import type_matches
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.kstatus import kstatus_conditions

DEFAULT_SINK_KEY: Final = "default"  # the operator config's sink (MLKUBE_EVENT_SINK_URI)
REASON_GONE: Final = "SinkGone"
MSG_GONE: Final = "the sink answered 410 Gone: nothing more is sent to it until its spec changes"


def sink_key(namespace: str, name: str) -> str:
    """The sink's name in the outbox, the metrics and the engine."""
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class SinkFilter:
    """What a sink wants. A sink in the operator's namespace may take any namespace's events
    (`namespaces`, empty: all); any other sink takes its own namespace's only."""

    key: str
    namespace: str | None  # None: every namespace (the default sink, operator-namespace sinks)
    namespaces: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def wants(self, namespace: str, event_type: str) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if self.namespaces and namespace not in self.namespaces:
            return False
        return type_matches(event_type, self.types)


def sink_filter(
    namespace: str, name: str, spec: Mapping[str, Any], operator_namespace: str
) -> SinkFilter:
    own = namespace == operator_namespace
    return SinkFilter(
        key=sink_key(namespace, name),
        namespace=None if own else namespace,
        namespaces=tuple(spec.get("namespaces") or ()) if own else (),
        types=tuple(spec.get("types") or ()),
    )


def fingerprint(spec: Mapping[str, Any], *resolved: object) -> str:
    """Changes whenever the spec (or what it resolves to) does: a 410 stop is lifted then."""
    text = json.dumps([dict(spec), [str(r) for r in resolved]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Problem:
    """Why the sink cannot be used (a human must fix it): a CamelCase reason and a message."""

    reason: str
    message: str


def destination_url(
    destination: Mapping[str, Any],
    sink_namespace: str,
    service: Mapping[str, Any] | None,
    cluster_domain: str,
) -> str | Problem:
    """`uri` as written, or the `ref` Service's cluster DNS URL (`service`: the Service read)."""
    if destination.get("uri"):
        return str(destination["uri"])
    ref = destination.get("ref") or {}
    namespace = ref.get("namespace") or sink_namespace
    shown = f"Service {namespace}/{ref.get('name')}"
    if service is None:
        return Problem("ServiceNotFound", f"{shown} does not exist")
    ports = [p for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    numbers = [int(p["port"]) for p in ports if p.get("port")]
    port = ref.get("port")
    if port is not None and int(port) not in numbers:
        return Problem("PortNotFound", f"{shown} has no port {port} (it has {numbers})")
    if port is None:
        named = [int(p["port"]) for p in ports if p.get("name") == "http" and p.get("port")]
        if len(numbers) == 1:
            port = numbers[0]
        elif named:
            port = named[0]
        else:
            return Problem(
                "PortNotFound",
                f"{shown} has ports {numbers}: set ref.port (or name one of them http)",
            )
    host = f"{ref.get('name')}.{namespace}.svc.{cluster_domain}"
    return f"http://{host}:{port}{ref.get('path') or '/'}"


class FailureLike(Protocol):
    @property
    def time(self) -> float: ...
    @property
    def status(self) -> int | None: ...
    @property
    def message(self) -> str: ...


class DeliveryState(Protocol):
    """The engine's view of one sink (mlkube.outbox.model.SinkState)."""

    @property
    def delivered(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def last_delivered_at(self) -> float | None: ...
    @property
    def last_failure(self) -> FailureLike | None: ...
    @property
    def throttled_until(self) -> float | None: ...
    @property
    def gone(self) -> bool: ...


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_sink_status(
    *,
    generation: int,
    urls: Sequence[str | None],  # the sink's URL and its dead letter sink's (None: none/unknown)
    problem: Problem | None,
    state: DeliveryState | None,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status, as `EventSinkStatus` would write it (a refused one fails here)."""
    url, dead_letter = [*urls, None, None][:2]
    doc: dict[str, Any] = {"observedGeneration": generation}
    if url:
        doc["sinkUri"] = url
    if dead_letter:
        doc["deadLetterSinkUri"] = dead_letter
    if state is not None:
        doc |= {"delivered": state.delivered, "failed": state.failed, "pending": state.pending}
        if state.last_delivered_at is not None:
            doc["lastDeliveredAt"] = rfc3339(state.last_delivered_at)
        if state.last_failure is not None:
            fail = state.last_failure
            doc["lastFailure"] = {"time": rfc3339(fail.time), "message": bound_message(
                fail.message)} | ({"status": fail.status} if fail.status else {})  # fmt: skip
        if state.throttled_until is not None:
            doc["throttledUntil"] = rfc3339(state.throttled_until)
    ready, reason, message, kstate = _verdict(problem, state, url)
    conditions = list((previous or {}).get("conditions") or [])
    conditions = set_condition(conditions, type_="Ready", status=ready, reason=reason,
                               message=message, generation=generation, now=now)  # fmt: skip
    conditions = kstatus_conditions(conditions, state=kstate, reason=reason, message=message,
                                    generation=generation, now=now)  # fmt: skip
    doc["conditions"] = [c.to_status() for c in condition_models(conditions)]
    doc["message"] = bound_message(message)
    return EventSinkStatus.model_validate(doc).to_status()


def _verdict(
    problem: Problem | None, state: DeliveryState | None, url: str | None
) -> tuple[bool, str, str, str]:
    """(Ready, reason, message, kstatus state)."""
    if problem is not None:
        return False, problem.reason, problem.message, "stalled"
    if state is not None and state.gone:
        return False, REASON_GONE, MSG_GONE, "stalled"
    if state is None:
        return False, "Resolving", f"registering {url} with the delivery engine", "working"
    counts = f"{state.delivered} delivered, {state.pending} pending, {state.failed} failed"
    fail = state.last_failure
    failing = (
        fail is not None
        and state.pending > 0
        and (state.last_delivered_at is None or fail.time > state.last_delivered_at)
    )
    if failing and fail is not None:
        answer = f"HTTP {fail.status}" if fail.status else "no answer"
        return (
            False,
            "DeliveryFailing",
            f"retrying ({counts}): {answer}: {fail.message}",
            ("working"),
        )
    if state.throttled_until is not None:
        until = rfc3339(state.throttled_until)
        return True, "Throttled", f"the sink asked to wait until {until} (429): {counts}", "done"
    return True, "Delivering", f"delivering to {url}: {counts}", "done"
