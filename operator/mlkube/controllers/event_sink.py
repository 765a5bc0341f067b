"""EventSinks: resolve a sink (its Service, its signing Secret) into what the delivery engine
needs, and keep its status in step with the delivery state (docs/notifications.md §1).

Services and Secrets are read by name, never watched or listed (RBAC: get only), so a sink
whose Service or Secret is missing is re-resolved on a timer. Status is written only when the
built status differs from the last one written or seen; counter changes at most once per
`min_interval` per sink (they move with every delivery, the API server need not), a new
verdict (Ready's status or reason) or generation at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.duration import parse_iso_duration
from mlkube.builders.event_sink import (
    DeliveryState,
    Problem,
    build_sink_status,
    destination_url,
    fingerprint,
    rfc3339,
    sink_key,
)
from mlkube.contract import API_VERSION, KIND_EVENT_SINK
from mlkube.controllers.kube import Kube
from mlkube.outbox.model import SinkConfig, Target

MIN_STATUS_INTERVAL: Final = 5.0  # seconds between two status writes of one sink


@dataclass(frozen=True)
class Resolution:
    """A sink's spec resolved: the engine's config, or why it cannot be used."""

    config: SinkConfig | None
    problem: Problem | None
    urls: tuple[str | None, str | None]  # the sink's and its dead letter sink's


def resolve(
    kube: Kube, namespace: str, name: str, spec: Mapping[str, Any], cluster_domain: str
) -> Resolution:
    """Read what the spec names (Services, the signing Secret) and build the engine's config."""
    url = resolve_url(kube, spec, namespace, cluster_domain)
    delivery = spec.get("delivery") or {}
    dlq_spec = delivery.get("deadLetterSink")
    dlq = resolve_url(kube, dlq_spec, namespace, cluster_domain) if dlq_spec else None
    urls = (url if isinstance(url, str) else None, dlq if isinstance(dlq, str) else None)
    key = _signing_key(kube, namespace, spec.get("signing"))
    for found in (url, dlq, key):
        if isinstance(found, Problem):
            return Resolution(None, found, urls)
    assert isinstance(url, str) and not isinstance(key, Problem)
    digest = hashlib.sha256(key).hexdigest() if key else ""
    config = SinkConfig(
        key=sink_key(namespace, name),
        target=Target(url),
        fingerprint=fingerprint(spec, url, dlq, digest),
        mode="structured" if spec.get("mode") == "structured" else "binary",
        format="azureml" if spec.get("format") == "azureml" else "cloudevents",
        retry=int(delivery.get("retry", 10)),
        backoff_policy="linear" if delivery.get("backoffPolicy") == "linear" else "exponential",
        backoff_delay=parse_iso_duration(
            str(delivery.get("backoffDelay") or "PT0.5S")
        ).total_seconds(),
        timeout=parse_iso_duration(str(delivery.get("timeout") or "PT10S")).total_seconds(),
        dead_letter=Target(dlq) if isinstance(dlq, str) else None,
        signing_key=key,
    )
    return Resolution(config, None, urls)


def resolve_url(
    kube: Kube, destination: Mapping[str, Any], namespace: str, cluster_domain: str
) -> str | Problem:
    """A destination's URL (its `ref` Service read by name), or why it has none."""
    ref = destination.get("ref")
    service = None
    if ref and not destination.get("uri"):
        where = ref.get("namespace") or namespace
        service = kube.get("v1", "Service", str(ref.get("name")), where)
    return destination_url(destination, namespace, service, cluster_domain)


def _signing_key(
    kube: Kube, namespace: str, signing: Mapping[str, Any] | None
) -> bytes | Problem | None:
    if not signing:
        return None
    ref = signing.get("secretRef") or {}
    secret = kube.get("v1", "Secret", str(ref.get("name")), namespace)
    shown = f"Secret {namespace}/{ref.get('name')}"
    if secret is None:
        return Problem("SecretNotFound", f"signing key: {shown} does not exist")
    raw = (secret.get("data") or {}).get(str(ref.get("key")))
    if not raw:
        return Problem("SecretNotFound", f"signing key: {shown} has no key {ref.get('key')!r}")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return Problem("SecretNotFound", f"signing key: {shown} key is not base64 data")


def _verdict(status: Mapping[str, Any]) -> tuple[Any, ...]:
    conditions = status.get("conditions") or []
    ready: Mapping[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    return status.get("observedGeneration"), ready.get("status"), ready.get("reason")


@dataclass
class _Sink:
    namespace: str
    name: str
    generation: int = 0
    resolution: Resolution | None = None
    status: dict[str, Any] = field(default_factory=dict)  # as last written or seen
    written_at: float = float("-inf")


class StatusKeeper:
    """The status each sink should show, written on change and at most every
    `min_interval` seconds. Thread-safe (watch events on the loop, ticks in threads)."""

    def __init__(
        self, kube: Kube, clock: Callable[[], float], min_interval: float = MIN_STATUS_INTERVAL
    ) -> None:
        self._kube, self._clock, self._min_interval = kube, clock, min_interval
        self._sinks: dict[str, _Sink] = {}
        self._lock = threading.Lock()

    def seen(self, uid: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """A watch event: the status the object carries now."""
        with self._lock:
            self._sinks.setdefault(uid, _Sink(namespace, name)).status = dict(status)

    def resolved(self, uid: str, resolution: Resolution, generation: int) -> None:
        """The spec of `generation` resolved: the status says it observed that generation."""
        with self._lock:
            if uid in self._sinks:
                self._sinks[uid].resolution = resolution
                self._sinks[uid].generation = generation

    def forget(self, uid: str) -> None:
        with self._lock:
            self._sinks.pop(uid, None)

    def sync(self, uid: str, state: DeliveryState | None) -> bool:
        """Write the status if it changed and the interval allows; True when written."""
        now = self._clock()
        with self._lock:
            sink = self._sinks.get(uid)
            if sink is None or sink.resolution is None:
                return False
            res = sink.resolution
            wanted = build_sink_status(
                generation=sink.generation, urls=res.urls, problem=res.problem,
                state=state if res.problem is None else None, previous=sink.status,
                now=rfc3339(now),
            )  # fmt: skip
            if wanted == sink.status:
                return False
            # Counters wait for the interval; a new verdict or generation is written at once.
            if now - sink.written_at < self._min_interval and _verdict(wanted) == _verdict(
                sink.status
            ):
                return False
            patch: dict[str, Any] = {k: None for k in sink.status if k not in wanted}
            patch.update(wanted)
            namespace, name = sink.namespace, sink.name
        self._kube.patch(API_VERSION, KIND_EVENT_SINK, name, {"status": patch}, namespace,
                         subresource="status")  # fmt: skip
        with self._lock:
            if uid in self._sinks:
                self._sinks[uid].status, self._sinks[uid].written_at = wanted, now
        return True
