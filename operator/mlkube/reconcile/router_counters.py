"""The router's Prometheus counters as the rollout's built-in metrics read them (pure).

A measurement covers the window between two scrapes of every Ready router replica, so the
numbers are counter deltas: per pod, only pods present in both snapshots (a pod that appeared
or vanished has no window), and a pod with a counter that went down was reset (the router
restarted), so its deltas are its current values. From the summed deltas of one deployment:

- errorRate: 5xx answers over answers, of the traffic the router chose for the deployment
  (`kind` live or mirror: a mirrored candidate gets mirror copies, a weighted one live
  requests; `targeted` requests name their deployment and are excluded). Upstream timeouts
  and protocol errors are already 5xx answers of that deployment (502/504); a live request
  that could not connect to it and failed over to another deployment is answered by the
  other one, so `mlkube_router_failovers_total` adds it to both numerator and denominator.
- latency: the quantile of `request_duration_seconds` bucket deltas, computed like
  Prometheus' `histogram_quantile` (linear inside the bucket).
- agreement: mirror_agreement / mirror_compared.

The metric names are the router's (serving-image/mlkube_serving/router/metrics.py; the
operator must not import the data plane, a unit test keeps the two in step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

PREFIX: Final = "mlkube_router_"
REQUESTS: Final = PREFIX + "requests_total"
LATENCY_BUCKET: Final = PREFIX + "request_duration_seconds_bucket"
FAILOVERS: Final = PREFIX + "failovers_total"
COMPARED: Final = PREFIX + "mirror_compared_total"
AGREED: Final = PREFIX + "mirror_agreement_total"
KEPT_SAMPLES: Final = frozenset({REQUESTS, LATENCY_BUCKET, FAILOVERS, COMPARED, AGREED})
ROUTED_KINDS: Final = frozenset({"live", "mirror"})  # what the router chose, not `targeted`

# (sample name, sorted (label, value) pairs)
Series = tuple[str, tuple[tuple[str, str], ...]]
Counters = dict[Series, float]


class MetricsFormatError(ValueError):
    """A /metrics answer that is not the Prometheus text format."""


def parse_counters(text: str, deployments: Iterable[str] | None = None) -> Counters:
    """The rollout-relevant samples of one replica's /metrics text (of `deployments` only,
    when given: the state a controller keeps stays small)."""
    wanted = None if deployments is None else set(deployments)
    out: Counters = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name not in KEPT_SAMPLES:
                    continue
                if wanted is not None and sample.labels.get("deployment") not in wanted:
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                out[key] = out.get(key, 0.0) + float(sample.value)
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise MetricsFormatError(f"not the Prometheus text format: {err}") from err
    return out


def series_delta(previous: Mapping[Series, float], current: Mapping[Series, float]) -> Counters:
    """current - previous per series; a series that went down (reset) or is new counts from 0."""
    out: Counters = {}
    for key, value in current.items():
        before = previous.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out


def was_reset(previous: Mapping[Series, float], current: Mapping[Series, float]) -> bool:
    """A counter went down or vanished: the router process restarted, all its counters with
    it (a series that restarted and already passed its old value would look like growth)."""
    return any(current.get(key, 0.0) < value for key, value in previous.items())


def window(
    previous: Mapping[str, Mapping[Series, float]], current: Mapping[str, Mapping[Series, float]]
) -> tuple[Counters, int]:
    """Summed deltas over the pods present in both snapshots (a reset pod counts all its
    current values), and how many pods that is."""
    total: Counters = {}
    pods = sorted(set(previous) & set(current))
    for pod in pods:
        before, now = previous[pod], current[pod]
        delta = dict(now) if was_reset(before, now) else series_delta(before, now)
        for key, value in delta.items():
            total[key] = total.get(key, 0.0) + value
    return total, len(pods)


def _sum(delta: Mapping[Series, float], name: str, deployment: str, **match: str) -> float:
    total = 0.0
    for (sample, labels), value in delta.items():
        if sample != name:
            continue
        got = dict(labels)
        if got.get("deployment") != deployment:
            continue
        if name in (REQUESTS, LATENCY_BUCKET) and got.get("kind") not in ROUTED_KINDS:
            continue
        if all(got.get(k) == v for k, v in match.items()):
            total += value
    return total


def error_rate(delta: Mapping[Series, float], deployment: str) -> tuple[float | None, int]:
    """(5xx + failed-over) / (answers + failed-over) of the deployment, and the request count."""
    failovers = _sum(delta, FAILOVERS, deployment)
    answers = failovers
    errors = failovers
    for (sample, labels), value in delta.items():
        got = dict(labels)
        if sample != REQUESTS or got.get("deployment") != deployment:
            continue
        if got.get("kind") not in ROUTED_KINDS:
            continue
        answers += value
        if got.get("status", "").startswith("5"):
            errors += value
    samples = round(answers)
    return (errors / answers if answers > 0 else None), samples


def buckets_of(delta: Mapping[Series, float], deployment: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the deployment's latency histogram, kinds summed."""
    by_bound: dict[float, float] = {}
    for (sample, labels), value in delta.items():
        got = dict(labels)
        if sample != LATENCY_BUCKET or got.get("deployment") != deployment:
            continue
        if got.get("kind") not in ROUTED_KINDS:
            continue
        try:
            bound = float(got["le"])
        except (KeyError, ValueError):
            continue
        by_bound[bound] = by_bound.get(bound, 0.0) + value
    return sorted(by_bound.items())


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs: None without
    observations (or without a +Inf bucket); the highest finite bound when the rank falls in
    +Inf; linear interpolation inside the bucket (from 0 for the first one)."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]) or math.isnan(q):
        return None
    # Deltas of a scrape racing an observation can be slightly non-monotonic: fix as Prometheus.
    fixed: list[tuple[float, float]] = []
    highest = 0.0
    for bound, count in buckets:
        highest = max(highest, count)
        fixed.append((bound, highest))
    observations = fixed[-1][1]
    if observations <= 0:
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * observations
    b = next((i for i, (_, c) in enumerate(fixed[:-1]) if c >= rank), len(fixed) - 1)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, end, count = 0.0, fixed[b][0], fixed[b][1]
    if b > 0:
        start = fixed[b - 1][0]
        count -= fixed[b - 1][1]
        rank -= fixed[b - 1][1]
    return start + (end - start) * (rank / count)


def latency_quantile(
    delta: Mapping[Series, float], deployment: str, q: float
) -> tuple[float | None, int]:
    """The q-quantile (seconds) of the deployment's answered requests, and their count."""
    buckets = buckets_of(delta, deployment)
    observations = round(buckets[-1][1]) if buckets and math.isinf(buckets[-1][0]) else 0
    return bucket_quantile(q, buckets), observations


def agreement(delta: Mapping[Series, float], deployment: str) -> tuple[float | None, int]:
    """Share of the deployment's compared mirror copies that agreed, and how many compared."""
    compared = _sum(delta, COMPARED, deployment)
    agreed = _sum(delta, AGREED, deployment)
    if compared <= 0:
        return None, 0
    return min(agreed / compared, 1.0), round(compared)
