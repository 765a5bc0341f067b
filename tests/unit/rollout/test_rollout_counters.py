"""The built-in router metrics: parsing the router's /metrics, windows between two scrapes
(resets, pods appearing or vanishing), error rate, histogram quantiles, agreement."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from mlkube.reconcile import router_counters as rc
from mlkube.reconcile.rollout_measure import RouterWindowState, window_measure
from mlkube_serving.router.metrics import RouterMetrics


def _text(metrics: RouterMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def _router_with_traffic() -> RouterMetrics:
    m = RouterMetrics()
    for _ in range(90):
        m.observe_request("green", 200, "live", 0.02)
    for _ in range(10):
        m.observe_request("green", 503, "live", 0.2)
    m.observe_request("green", 500, "targeted", 0.02)  # named by the client: not counted
    m.observe_request("blue", 200, "live", 0.004)
    m.failovers.labels("green").inc(5)
    m.mirror_compared.labels("green").inc(8)
    m.mirror_agreement.labels("green").inc(6)
    return m


def test_the_names_read_are_the_names_the_router_exposes() -> None:
    counters = rc.parse_counters(_text(_router_with_traffic()))
    assert {name for name, _ in counters} == set(rc.KEPT_SAMPLES)


def test_a_fresh_router_measured_from_zero() -> None:
    counters = rc.parse_counters(_text(_router_with_traffic()), ["green"])
    assert all(dict(labels)["deployment"] == "green" for _, labels in counters)
    rate, samples = rc.error_rate(counters, "green")
    # 10 5xx + 5 failovers over 100 answers + 5 failovers; the targeted 500 is excluded
    assert samples == 105
    assert rate == pytest.approx(15 / 105)
    assert rc.agreement(counters, "green") == (0.75, 8)
    p50, count = rc.latency_quantile(counters, "green", 0.5)
    assert count == 100
    assert 0.01 < p50 <= 0.025  # 0.02 lies in (0.01, 0.025]


def test_not_prometheus_text_is_a_format_error() -> None:
    with pytest.raises(rc.MetricsFormatError):
        rc.parse_counters('mlkube_router_requests_total{deployment="a" 1\n')


def _series(name: str, **labels: str) -> rc.Series:
    return (name, tuple(sorted(labels.items())))


def test_delta_counts_a_reset_counter_from_zero_and_a_new_series_whole() -> None:
    a = _series(rc.REQUESTS, deployment="g", status="200", kind="live")
    b = _series(rc.REQUESTS, deployment="g", status="500", kind="live")
    assert rc.series_delta({a: 100.0}, {a: 130.0}) == {a: 30.0}
    assert rc.series_delta({a: 100.0}, {a: 7.0}) == {a: 7.0}  # restarted: 7 since
    assert rc.series_delta({a: 100.0}, {a: 100.0, b: 2.0}) == {a: 0.0, b: 2.0}


def test_a_pod_with_a_counter_that_went_down_restarted_whole() -> None:
    a = _series(rc.REQUESTS, deployment="g", status="200", kind="live")
    b = _series(rc.REQUESTS, deployment="g", status="500", kind="live")
    # b restarted and already passed its old value; a going down gives the restart away
    delta, pods = rc.window({"p": {a: 100.0, b: 2.0}}, {"p": {a: 10.0, b: 5.0}})
    assert (delta, pods) == ({a: 10.0, b: 5.0}, 1)


def test_window_uses_only_pods_scraped_both_times() -> None:
    a = _series(rc.REQUESTS, deployment="g", status="200", kind="live")
    previous = {"pod-1": {a: 10.0}, "pod-2": {a: 50.0}}
    current = {"pod-1": {a: 25.0}, "pod-3": {a: 1000.0}}
    delta, pods = rc.window(previous, current)
    assert (delta, pods) == ({a: 15.0}, 1)


def test_error_rate_of_mirror_copies_and_of_nothing() -> None:
    d = {
        _series(rc.REQUESTS, deployment="g", status="200", kind="mirror"): 30.0,
        _series(rc.REQUESTS, deployment="g", status="502", kind="mirror"): 10.0,
        _series(rc.REQUESTS, deployment="b", status="200", kind="live"): 40.0,
    }
    assert rc.error_rate(d, "g") == (0.25, 40)
    assert rc.error_rate(d, "b") == (0.0, 40)
    assert rc.error_rate(d, "nobody") == (None, 0)


INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [(0.1, 10.0), (0.25, 30.0), (INF, 30.0)], 0.1 + 0.15 * (5 / 20)),
        (0.25, [(0.1, 10.0), (0.25, 30.0), (INF, 30.0)], 0.075),  # first bucket from 0
        (0.99, [(0.1, 10.0), (0.25, 30.0), (INF, 40.0)], 0.25),  # rank in +Inf: highest bound
        (1.0, [(0.1, 10.0), (0.25, 10.0), (INF, 10.0)], 0.1),
        (0.5, [(0.1, 10.0), (0.25, 8.0), (INF, 20.0)], 0.1),  # non-monotonic deltas fixed
        (0.5, [(0.1, 0.0), (INF, 0.0)], None),  # no observations
        (0.5, [(0.1, 3.0), (0.25, 3.0)], None),  # no +Inf bucket
        (1.5, [(0.1, 3.0), (INF, 3.0)], INF),
        (-0.1, [(0.1, 3.0), (INF, 3.0)], -INF),
    ],
)
def test_bucket_quantile_is_prometheus_histogram_quantile(
    q: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    got = rc.bucket_quantile(q, buckets)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_latency_sums_live_and_mirror_and_skips_targeted() -> None:
    def bucket(le: str, kind: str, value: float) -> tuple[rc.Series, float]:
        return _series(rc.LATENCY_BUCKET, deployment="g", kind=kind, le=le), value

    d = dict(
        [
            bucket("0.1", "live", 4.0), bucket("+Inf", "live", 4.0),
            bucket("0.1", "mirror", 0.0), bucket("+Inf", "mirror", 4.0),
            bucket("0.1", "targeted", 100.0), bucket("+Inf", "targeted", 100.0),
        ]
    )  # fmt: skip
    assert rc.latency_quantile(d, "g", 0.5) == (pytest.approx(0.1), 8)
    assert rc.latency_quantile(d, "g", 0.25) == (pytest.approx(0.05), 8)


def test_first_scrape_is_a_baseline_and_the_next_one_a_window() -> None:
    m = RouterMetrics()
    first = RouterWindowState(("green", "blue"), {"p": rc.parse_counters(_text(m))})
    raw = window_measure("errorRate", "green", "blue", None, first)
    assert raw.baseline and raw.candidate is None
    for _ in range(3):
        m.observe_request("green", 500, "live", 0.01)
    m.observe_request("green", 200, "live", 0.01)
    m.observe_request("blue", 200, "live", 0.01)
    second = RouterWindowState(("green", "blue"), {"p": rc.parse_counters(_text(m))})
    raw = window_measure("errorRate", "green", "blue", first, second)
    assert not raw.baseline
    assert (raw.candidate, raw.candidate_samples, raw.stable, raw.stable_samples) == (
        0.75, 4, 0.0, 1,
    )  # fmt: skip
    # a state of other deployments (the candidate changed) is no window: a new baseline
    other = RouterWindowState(("red",), first.pods)
    assert window_measure("errorRate", "green", "blue", other, second).baseline
    # the router pod was replaced between the scrapes: no pod in both, no data
    replaced = RouterWindowState(("green", "blue"), {"q": second.pods["p"]})
    raw = window_measure("errorRate", "green", "blue", first, replaced)
    assert raw.candidate is None and not raw.baseline and "no router pod" in raw.message
