"""Prometheus metrics of the router, all prefixed `mlkube_router_`.

Label children are cached per label tuple so the hot path pays a dict lookup and an `inc`, not
prometheus_client's label validation. The agreement ratio is not stored: a collector derives
it at scrape time from the compared/agreement counters, which also makes it correct when
several worker processes write their counters to a multiprocess directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "mlkube_router_"
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class RouterMetrics:
    """The router's metric objects plus cached label children for the hot path."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            PREFIX + "requests",
            "Requests answered, by deployment (or 'none'), HTTP status and kind.",
            ["deployment", "status", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            PREFIX + "request_duration_seconds",
            "Upstream round-trip time as seen by the router, by deployment and kind.",
            ["deployment", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            PREFIX + "upstream_errors",
            "Failed upstream exchanges by reason (unreachable, timeout, protocol).",
            ["deployment", "reason"],
            registry=r,
        )
        self.failovers = Counter(
            PREFIX + "failovers",
            "Live requests that could not connect to this deployment and were sent to another "
            "one (they appear in `requests` under the deployment that answered).",
            ["deployment"],
            registry=r,
        )
        self.mirror_dropped = Counter(
            PREFIX + "mirror_dropped",
            "Mirror copies shed, by reason: queue_full (count bound), byte_budget (bytes bound).",
            ["deployment", "reason"],
            registry=r,
        )
        self.mirror_compared = Counter(
            PREFIX + "mirror_compared",
            "Mirrored requests whose live and shadow predictions were compared.",
            ["deployment"],
            registry=r,
        )
        self.mirror_agreement = Counter(
            PREFIX + "mirror_agreement",
            "Compared mirrored requests whose shadow predictions matched the live ones.",
            ["deployment"],
            registry=r,
        )
        self.mirror_uncomparable = Counter(
            PREFIX + "mirror_uncomparable",
            "Mirrored requests that could not be compared (error status or unknown shape).",
            ["deployment"],
            registry=r,
        )
        self.config_reloads = Counter(
            PREFIX + "config_reloads",
            "Config file loads by result (ok, error, stale: older than the served revision).",
            ["result"],
            registry=r,
        )
        self.shed_requests = Counter(
            PREFIX + "shed_requests",
            "Requests answered 503 (gRPC: RESOURCE_EXHAUSTED) because the in-flight byte budget "
            "was spent, by reason: request_bytes (its body or message did not fit), "
            "response_bytes (its upstream answer did not).",
            ["reason"],
            registry=r,
        )
        self.config_pushes = Counter(
            PREFIX + "config_pushes",
            "Config pushes (PUT /-/config) by result (ok, forbidden, conflict, invalid).",
            ["result"],
            registry=r,
        )
        self.config_revision = Gauge(
            PREFIX + "config_revision",
            "Revision of the config this process serves from (0: none given).",
            registry=r,
            multiprocess_mode="max",
        )
        self.config_info = Gauge(
            PREFIX + "config_info",
            "1 for the sha256 of the config file this process serves from.",
            ["hash"],
            registry=r,
            multiprocess_mode="max",
        )
        self.upstream_up = Gauge(
            PREFIX + "upstream_up",
            "1 when the deployment's last health probe or request succeeded, else 0.",
            ["deployment"],
            registry=r,
            multiprocess_mode="max",
        )
        self._request_children: dict[tuple[str, int, str], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}

    def observe_request(self, deployment: str, status: int, kind: str, seconds: float) -> None:
        """Count one answered request and, when it reached an upstream, its latency."""
        key = (deployment, status, kind)
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(deployment, str(status), kind)
            self._request_children[key] = child
        child.inc()
        if seconds >= 0.0:
            lkey = (deployment, kind)
            hist = self._latency_children.get(lkey)
            if hist is None:
                hist = self._latency_children[lkey] = self.latency.labels(deployment, kind)
            hist.observe(seconds)

    def source_for_ratio(self) -> Collector:
        """The counters the agreement ratio is derived from (single-process mode)."""
        return _Counters([self.mirror_compared, self.mirror_agreement])


class _Counters(Collector):
    def __init__(self, counters: list[Counter]) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        for counter in self._counters:
            yield from counter.collect()


class AgreementRatioCollector(Collector):
    """Exposes `mlkube_router_mirror_agreement_ratio{deployment}` = agreement / compared."""

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        compared: dict[str, float] = {}
        agreed: dict[str, float] = {}
        for family in self._source.collect():
            if family.name == PREFIX + "mirror_compared":
                _sum_totals(family, compared)
            elif family.name == PREFIX + "mirror_agreement":
                _sum_totals(family, agreed)
        gauge = GaugeMetricFamily(
            PREFIX + "mirror_agreement_ratio",
            "Share of compared mirrored requests whose predictions agreed with the live ones.",
            labels=["deployment"],
        )
        for deployment, total in sorted(compared.items()):
            if total > 0:
                gauge.add_metric([deployment], agreed.get(deployment, 0.0) / total)
        return [gauge]


def _sum_totals(family: Metric, into: dict[str, float]) -> None:
    for sample in family.samples:
        if sample.name.endswith("_total"):
            name = sample.labels.get("deployment", "")
            into[name] = into.get(name, 0.0) + sample.value
