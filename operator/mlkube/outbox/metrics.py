"""Prometheus series of the outbox and delivery (names in docs/notifications.md §4).

Created unregistered: this package knows nothing of the operator's registry (it lives in the
Kopf-bound handlers layer), which registers `ALL` on it; tests read the objects directly.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

DELIVERY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

ENQUEUED: Final = Counter(
    "mlkube_events_enqueued",
    "Events new to the outbox, by CloudEvents type (each id once).",
    ["type"],
    registry=None,
)
DELIVERED: Final = Counter(
    "mlkube_events_delivered",
    "Events a sink acknowledged with 2xx.",
    ["sink"],
    registry=None,
)
FAILED: Final = Counter(
    "mlkube_events_failed",
    "Deliveries given up, by reason: rejected (non-retryable answer), retries_exhausted, "
    "refused (address policy), dead_letter_failed, overflow (outbox bound), sink_deleted.",
    ["sink", "reason"],
    registry=None,
)
PENDING: Final = Gauge(
    "mlkube_events_pending",
    "Deliveries waiting in the outbox per sink (dead-letter ones included).",
    ["sink"],
    registry=None,
)
DELIVERY_SECONDS: Final = Histogram(
    "mlkube_event_delivery_seconds",
    "From enqueue to the sink's acknowledgement, retries and pauses included.",
    ["sink"],
    buckets=DELIVERY_BUCKETS,
    registry=None,
)
ALL: Final = (ENQUEUED, DELIVERED, FAILED, PENDING, DELIVERY_SECONDS)
