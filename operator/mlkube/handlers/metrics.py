"""The operator's own Prometheus metrics: reconcile rates, errors and durations per kind, and
BatchJobs by phase with their item counts (the chart's operator dashboard reads these).

Served on MLKUBE_METRICS_PORT (the chart sets it; unset: no server, as in tests that run the
operator in-process). A private registry keeps the process's default collectors out, so the
page has only mlkube's series. BatchJob numbers come from the watch (every event carries the
status), not from extra API calls: a collector counts them at scrape time, so a deleted job's
series disappear with it. Their namespace label is `batchjob_namespace`: `namespace` is the
scrape target's (the operator's), which Prometheus would otherwise rename to
`exported_namespace`. A standby replica (leader election) reconciles nothing and shows
no BatchJobs that it has not seen.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import kopf
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlkube.api.batch_job import BATCH_JOB_PHASES
from mlkube.controllers.router_push import PUSH_RESULTS
from mlkube.outbox import metrics as outbox_metrics

ENV_METRICS_PORT: Final = "MLKUBE_METRICS_PORT"
RECONCILE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ITEM_STATES: Final = ("total", "succeeded", "failed")

REGISTRY: Final = CollectorRegistry(auto_describe=True)
RECONCILES: Final = Counter(
    "mlkube_operator_reconcile",
    "Reconcile passes by kind and result (ok; error: retried after a delay).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS: Final = Histogram(
    "mlkube_operator_reconcile_duration_seconds",
    "Duration of a reconcile pass by kind (API calls included, waits for locks too).",
    ["kind"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)


@contextmanager
def reconciling(kind: str) -> Iterator[None]:
    """Count one reconcile pass of `kind` and time it; an exception counts as an error (a
    cancellation, the operator stopping, as neither)."""
    start = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)


class BatchJobs(Collector):
    """The last status seen of every BatchJob, keyed by uid; counted at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[str, str, str, dict[str, int]]] = {}

    def seen(self, uid: str, namespace: str, name: str, status: Mapping[str, Any] | None) -> None:
        status = status or {}
        items = status.get("items") or {}
        counts = {state: int(items.get(state) or 0) for state in ITEM_STATES}
        with self._lock:
            self._jobs[uid] = (namespace, name, str(status.get("phase") or "Pending"), counts)

    def gone(self, uid: str) -> None:
        with self._lock:
            self._jobs.pop(uid, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            jobs = list(self._jobs.values())
        phases = GaugeMetricFamily(
            "mlkube_batch_jobs",
            "BatchJobs by namespace and phase (every phase reported, 0 when none).",
            labels=["batchjob_namespace", "phase"],
        )
        by_phase: dict[tuple[str, str], int] = {}
        for namespace, _, phase, _ in jobs:
            by_phase[namespace, phase] = by_phase.get((namespace, phase), 0) + 1
        for namespace in sorted({job[0] for job in jobs}):
            for phase in BATCH_JOB_PHASES:
                phases.add_metric([namespace, phase], by_phase.get((namespace, phase), 0))
        items = GaugeMetricFamily(
            "mlkube_batch_job_items",
            "Items (files or rows) of a BatchJob by state: total, succeeded, failed.",
            labels=["batchjob_namespace", "batchjob", "phase", "state"],
        )
        for namespace, name, phase, counts in sorted(jobs):
            for state in ITEM_STATES:
                items.add_metric([namespace, name, phase, state], counts[state])
        yield phases
        yield items


class RouterPushes(Collector):
    """Router config pushes by result (`controllers.router_push` counts them)."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "mlkube_operator_router_config_pushes",
            "Router config pushes by result: ok, forbidden, conflict, invalid (the router's "
            "answer), error (no answer), no_key (no push key Secret). A failed push is retried "
            "on the next pass; the mounted file arrives anyway.",
            labels=["result"],
        )
        for result, value in sorted(dict(PUSH_RESULTS).items()):
            family.add_metric([result], value)
        yield family


BATCH_JOBS: Final = BatchJobs()
REGISTRY.register(BATCH_JOBS)
REGISTRY.register(RouterPushes())
for _collector in outbox_metrics.ALL:  # notifications: mlkube_events_*, created unregistered
    REGISTRY.register(_collector)
_server: list[Any] = []


@kopf.on.startup()
def serve_metrics(logger: kopf.Logger, **_: Any) -> None:
    """Start the metrics server when MLKUBE_METRICS_PORT names a port."""
    raw = os.environ.get(ENV_METRICS_PORT, "")
    if not raw or _server:
        return
    try:
        port = int(raw)
    except ValueError as err:
        raise kopf.PermanentError(f"{ENV_METRICS_PORT}={raw!r}: not a port number") from err
    server, _thread = start_http_server(port, addr="0.0.0.0", registry=REGISTRY)
    _server.append(server)
    logger.info(f"metrics on :{port}/metrics")


@kopf.on.cleanup()
def stop_metrics(**_: Any) -> None:
    while _server:
        server = _server.pop()
        server.shutdown()
        server.server_close()
