"""Prometheus view of the drift sidecar, built from the latest summary at scrape time.

A custom collector (not long-lived Gauges) so every scrape shows one consistent evaluation
and no stale series survive. Labels name features and methods only, never values or bins, and
only the top-N features by profile importance get per-feature series, so a wide model cannot
blow up Prometheus cardinality. A private registry keeps the process's default collectors
(and any PROMETHEUS_MULTIPROC_DIR inherited from the server's environment) out of the way.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mlkube_serving.drift.worker import DriftWorker

DEFAULT_MAX_FEATURE_SERIES = 50
EVALUATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class EvaluationTimes:
    """A tiny histogram of evaluation durations (single writer: the worker thread)."""

    def __init__(self, buckets: Sequence[float] = EVALUATION_BUCKETS) -> None:
        self.bounds = list(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
            self.total += seconds

    def family(self) -> HistogramMetricFamily:
        with self._lock:
            counts, total = list(self.counts), self.total
        cumulative, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return HistogramMetricFamily(
            "mlkube_drift_evaluation_seconds",
            "Time to evaluate the drift window.",
            buckets=cumulative,
            sum_value=total,
        )


def select_series_features(features: Sequence[Mapping[str, Any]], limit: int) -> set[str]:
    """Names of the features that get per-feature series: top `limit` by importance."""
    if len(features) <= limit:
        return {str(f["name"]) for f in features}
    ranked = sorted(
        enumerate(features),
        key=lambda item: (
            item[1].get("importance") is None,
            -(item[1].get("importance") or 0.0),
            item[0],
        ),
    )
    return {str(f["name"]) for _, f in ranked[:limit]}


class DriftCollector(Collector):
    """Yields the drift metric families from the worker's latest summary."""

    def __init__(self, worker: DriftWorker, times: EvaluationTimes, max_series: int) -> None:
        self.worker = worker
        self.times = times
        self.series = select_series_features(worker.engine.profile["features"], max_series)

    def collect(self) -> Iterator[Metric]:
        summary = self.worker.summary
        score = GaugeMetricFamily(
            "mlkube_drift_score",
            "Drift score of a feature by method.",
            labels=["feature", "method"],
        )
        threshold = GaugeMetricFamily(
            "mlkube_drift_threshold",
            "Drift threshold of a feature by method (calibrated, never below the default).",
            labels=["feature", "method"],
        )
        nulls = _gauge("mlkube_feature_null_ratio", "Share of nulls in the window.", "feature")
        out_of_range = _gauge(
            "mlkube_feature_out_of_range_ratio",
            "Share of numeric values outside the baseline min/max.",
            "feature",
        )
        unseen = _gauge(
            "mlkube_feature_unseen_ratio", "Share of categories never seen in training.", "feature"
        )
        for feature in summary["features"]:
            name = feature["name"]
            if name not in self.series:
                continue
            for method, value in (feature["scores"] or {}).items():
                score.add_metric([name, method], value)
            for method, value in feature["thresholds"].items():
                threshold.add_metric([name, method], value)
            _add(nulls, [name], feature["nullRatio"])
            _add(out_of_range, [name], feature.get("outOfRangeRatio"))
            _add(unseen, [name], feature.get("unseenRatio"))
        yield from (score, threshold, nulls, out_of_range, unseen)
        dataset = summary["datasetDrift"]
        yield _scalar(
            "mlkube_drift_detected", "1 when dataset drift is detected.", dataset["detected"]
        )
        yield _scalar(
            "mlkube_drift_drifted_features_ratio", "Share of drifted features.", dataset["ratio"]
        )
        yield _scalar(
            "mlkube_drift_window_samples", "Rows in the window.", summary["windowSamples"]
        )
        yield from self._prediction(summary.get("prediction"))
        yield CounterMetricFamily(
            "mlkube_drift_samples_received", "Rows received.", value=self.worker.received
        )
        yield CounterMetricFamily(
            "mlkube_drift_samples_dropped",
            "Rows not added to the window (queue full or malformed payload).",
            value=self.worker.dropped,
        )
        yield CounterMetricFamily(
            "mlkube_drift_payloads_invalid",
            "Payloads that were not valid JSON samples objects.",
            value=self.worker.invalid_payloads,
        )
        yield self.times.family()

    @staticmethod
    def _prediction(entry: Mapping[str, Any] | None) -> Iterator[Metric]:
        if entry is None:
            return
        score = _gauge("mlkube_prediction_drift_score", "Prediction drift by method.", "method")
        threshold = _gauge("mlkube_prediction_drift_threshold", "Prediction threshold.", "method")
        for method, value in (entry["scores"] or {}).items():
            score.add_metric([method], value)
        for method, value in entry["thresholds"].items():
            threshold.add_metric([method], value)
        yield score
        yield threshold
        yield _scalar(
            "mlkube_prediction_drift_detected", "1 when predictions drifted.", entry["drifted"]
        )


def _gauge(name: str, doc: str, label: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=[label])


def _add(family: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        family.add_metric(labels, value)


def _scalar(name: str, doc: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def serve_metrics(
    worker: DriftWorker, times: EvaluationTimes, *, host: str, port: int, max_series: int
) -> Any:
    """Start the metrics HTTP server on its own thread; returns the server (for shutdown)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DriftCollector(worker, times, max_series))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
