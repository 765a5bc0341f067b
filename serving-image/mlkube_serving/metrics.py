"""Prometheus metrics of the model server, served on their own port, safe with many workers.

With several uvicorn workers every process writes its samples to files under
`PROMETHEUS_MULTIPROC_DIR` and the parent process serves the merged view on the metrics port.
That variable must be set before `prometheus_client` is first imported, which is why
`server.py` sets it before importing this module. Label children are cached so the hot path
does one dict lookup instead of prometheus_client's locked label resolution.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

REQUESTS = Counter(
    "mlkube_requests_total",
    "Inference requests by model, protocol and HTTP status.",
    ["model", "protocol", "status"],
)
LATENCY = Histogram(
    "mlkube_request_duration_seconds",
    "Inference request latency inside the server, by model and protocol.",
    ["model", "protocol"],
    buckets=LATENCY_BUCKETS,
)
LOAD_SECONDS = Gauge(
    "mlkube_model_load_seconds",
    "Seconds spent loading and warming up the model.",
    ["model"],
    multiprocess_mode="max",
)
RUNTIME_INFO = Gauge(
    "mlkube_model_runtime_info",
    "1 for the runtime that executes the model (onnxruntime for accelerated sklearn).",
    ["model", "framework", "runtime"],
    multiprocess_mode="max",
)
DRIFT_DROPPED = Counter(
    "mlkube_drift_samples_send_dropped_total",
    "Samples for the drift sidecar dropped (queue full or delivery failed).",
    ["model", "reason"],
)
DRIFT_SENT = Counter(
    "mlkube_drift_samples_sent_total",
    "Samples delivered to the drift sidecar.",
    ["model"],
)
BATCH_REQUESTS = Histogram(
    "mlkube_batch_requests",
    "Requests merged into one runtime call by adaptive batching (batching on only).",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
)
PAYLOAD_LOG_DROPPED = Counter(
    "mlkube_payload_log_dropped_total",
    "Payload log pairs dropped (queue_full, sink_down, post_failed, unredactable, error).",
    ["model", "reason"],
)
PAYLOAD_LOG_SENT = Counter(
    "mlkube_payload_log_events_sent_total",
    "Payload log CloudEvents accepted by the sink.",
    ["model"],
)

INFLIGHT = Gauge(
    "mlkube_inflight_requests",
    "Requests being served right now (sampled twice a second per worker, summed over workers); "
    "the per-pod metric an HPA concurrency target scales on.",
    ["model"],
    multiprocess_mode="livesum",
)

_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
# Requests observed since the last flush: (model, protocol, status) -> [count, seconds, buckets].
# Writing prometheus_client's values (three mmap writes in multiprocess mode) per request cost
# ~2.5 µs of a ~20 µs request; a tally and one flush per event-loop iteration cost a fraction.
_pending: dict[tuple[str, str, int], list[Any]] = {}


_flush_loop: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on


def observe_request(model: str, protocol: str, status: int, seconds: float) -> None:
    """Count one request and record its latency (published at the end of this loop turn)."""
    global _flush_loop
    _tally((model, protocol, status), seconds)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: publish right away
        flush_requests()
        return
    if _flush_loop is not loop:  # none scheduled here (or on a loop that closed before it ran)
        loop.call_soon(flush_requests)
        _flush_loop = loop


def _tally(key: tuple[str, str, int], seconds: float) -> None:
    tally = _pending.get(key)
    if tally is None:
        tally = _pending[key] = [0, 0.0, [0] * (len(LATENCY_BUCKETS) + 1)]
    tally[0] += 1
    tally[1] += seconds
    tally[2][bisect_left(LATENCY_BUCKETS, seconds)] += 1


def flush_requests() -> None:
    """Publish the tallied requests to the prometheus values."""
    global _flush_loop
    _flush_loop = None  # first: a failing flush leaves the next request to schedule one
    while _pending:
        key, (count, seconds, buckets) = _pending.popitem()
        children = _request_children.get(key)
        if children is None:
            model, protocol, status = key
            children = (REQUESTS.labels(model, protocol, str(status)),
                        LATENCY.labels(model, protocol))  # fmt: skip
            _request_children[key] = children
        children[0].inc(count)
        add_observations(children[1], seconds, buckets)


def add_observations(child: Any, seconds: float, buckets: list[int]) -> None:
    """Add many observations to a histogram child at once (counts per LATENCY_BUCKETS slot,
    then +Inf). prometheus_client has no public bulk call; its per-bucket values and sum are
    what `observe` itself updates (checked by a unit test against `observe`)."""
    child._sum.inc(seconds)
    for slot, count in enumerate(buckets):
        if count:
            child._buckets[slot].inc(count)


def record_model(model: str, framework: str, runtime: str, load_seconds: float) -> None:
    """Record how long the model took to load and which runtime serves it."""
    LOAD_SECONDS.labels(model).set(load_seconds)
    RUNTIME_INFO.labels(model, framework, runtime).set(1)


def set_inflight(model: str, value: int) -> None:
    INFLIGHT.labels(model).set(value)


def count_drift_dropped(model: str, reason: str, samples: int = 1) -> None:
    DRIFT_DROPPED.labels(model, reason).inc(samples)


def count_drift_sent(model: str, samples: int) -> None:
    DRIFT_SENT.labels(model).inc(samples)


def observe_batch(model: str, requests: int) -> None:
    BATCH_REQUESTS.labels(model).observe(requests)


def count_payload_log_dropped(model: str, reason: str) -> None:
    PAYLOAD_LOG_DROPPED.labels(model, reason).inc()


def count_payload_log_sent(model: str) -> None:
    PAYLOAD_LOG_SENT.labels(model).inc()


def collecting_registry() -> CollectorRegistry:
    """The registry to expose: merged worker files in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def render() -> bytes:
    """The exposition text (for tests and debugging)."""
    flush_requests()
    return generate_latest(collecting_registry())


def reset_multiprocess_dir(path: str) -> None:
    """Remove the sample files of a previous run so its counters do not leak into this one.

    Only prometheus_client's `*.db` files are removed: the variable may point anywhere.
    """
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)


def serve(port: int, host: str) -> None:
    """Serve /metrics on its own port from a daemon thread."""
    start_http_server(port, addr=host, registry=collecting_registry())
