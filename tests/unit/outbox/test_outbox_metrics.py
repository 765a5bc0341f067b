"""The operator's /metrics page carries the notification series (docs/notifications.md §4)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from mlkube.handlers.metrics import REGISTRY
from mlkube.outbox.model import Occurrence
from mlkube.outbox.store import Outbox


def test_the_operator_registry_serves_the_event_series(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_events=1)
    box.enqueue(
        [Occurrence(f"m{i}", "dev.mlkube.model.registered.v1", 9e9, "u", b"{}") for i in range(2)],
        ["metrics/sink"],
    )
    page = generate_latest(REGISTRY).decode()
    assert 'mlkube_events_enqueued_total{type="dev.mlkube.model.registered.v1"}' in page
    assert 'mlkube_events_pending{sink="metrics/sink"} 1.0' in page
    assert 'mlkube_events_failed_total{reason="overflow",sink="metrics/sink"} 1.0' in page
    for name in ("mlkube_events_delivered_total", "mlkube_event_delivery_seconds"):
        assert f"# TYPE {name.removesuffix('_total')}" in page
