"""The built-in rollout metrics against real router processes and real traffic.

The candidate `green` answers every 4th request 500 and takes 0.3 s, so its error rate and
latency are known from what the client saw; the measurements go through the operator's entry
point (`measure_metric`) with an in-memory Kube holding the router pods (loopback addresses,
their real metrics ports), exactly as the rollout loop calls it.
"""

from __future__ import annotations

from typing import Any

import pytest
from rollout_harness import GREEN_BUCKET, Meter, builtin, endpoint, of, router_pod, send
from router_harness import Upstream, base_config, wait_until

from support.fake_kube import FakeKube


def test_error_rate_and_latency_of_live_traffic_window_by_window(
    upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(upstreams, traffic={"blue": 50, "green": 50}))
    kube = FakeKube()
    kube.put(router_pod("r1", router.metrics_port))
    errors = Meter(kube, builtin("errorRate", compare="difference"), endpoint())
    p50 = Meter(kube, builtin("latency", quantile=0.5, compare="ratio"), endpoint())
    assert errors.measure().baseline and p50.measure().baseline

    for batch in (200, 80):
        results = send(router.url, batch)
        (green, green_5xx), (blue, blue_5xx) = of(results, "green"), of(results, "blue")
        assert green + blue == batch and green_5xx > 0 and blue_5xx == 0
        raw = errors.measure()
        # exactly this window's answers, not the router's totals since it started
        assert (raw.candidate_samples, raw.stable_samples) == (green, blue)
        assert raw.candidate == pytest.approx(green_5xx / green) and raw.stable == 0.0
        raw = p50.measure()
        assert raw.candidate_samples == green
        low, high = GREEN_BUCKET
        assert raw.candidate == pytest.approx(low + (high - low) * 0.5, abs=0.01)
        assert raw.stable is not None and raw.stable < low  # blue answers at once

    # The router restarts (same pod, counters back to zero): the window counts what it
    # answered since, not a negative difference.
    router.proc.terminate()
    router.proc.wait(timeout=10)
    restarted = start_router(base_config(upstreams, traffic={"blue": 50, "green": 50}))
    kube.put(router_pod("r1", restarted.metrics_port))
    results = send(restarted.url, 40)
    green, green_5xx = of(results, "green")
    raw = errors.measure()
    assert raw.candidate_samples == green
    assert raw.candidate == pytest.approx(green_5xx / green)


def test_only_router_pods_scraped_both_times_count(
    upstreams: dict[str, Upstream], start_router: Any
) -> None:
    doc = base_config(upstreams, traffic={"blue": 50, "green": 50})
    first, second = start_router(doc), start_router(doc)
    kube = FakeKube()
    kube.put(router_pod("r1", first.metrics_port))
    meter = Meter(kube, builtin("errorRate"), endpoint())
    assert meter.measure().baseline
    kube.put(router_pod("r2", second.metrics_port))  # scaled up after the baseline
    results = send(first.url, 60)
    send(second.url, 60)
    raw = meter.measure()
    green, green_5xx = of(results, "green")
    assert raw.candidate_samples == green and raw.candidate == pytest.approx(green_5xx / green)
    assert "over 1 router pods" in raw.message
    results = send(second.url, 30)  # now r2 has a window too
    more = meter.measure()
    assert more.candidate_samples == of(results, "green")[0]


def test_mirrored_candidate_error_rate_and_agreement(
    upstreams: dict[str, Upstream], start_router: Any
) -> None:
    for upstream in upstreams.values():
        upstream.reset()  # green fails exactly every 4th request from here
    doc = base_config(upstreams, traffic={"blue": 100}, mirror={"green": 100, "red": 100})
    router = start_router(doc)
    kube = FakeKube()
    kube.put(router_pod("r1", router.metrics_port))
    meters = {
        "errors": Meter(kube, builtin("errorRate"), endpoint()),
        "green": Meter(kube, builtin("agreement"), endpoint("green")),
        "red": Meter(kube, builtin("agreement"), endpoint("red")),
    }
    assert all(m.measure().baseline for m in meters.values())
    results = send(router.url, 100)
    assert {r.status for r in results} == {200}  # the candidate's failures never reach clients

    def copies(name: str) -> float:
        return router.metric("mlkube_router_requests_total", deployment=name, kind="mirror")

    wait_until(lambda: copies("green") == 100 and copies("red") == 100, timeout=30)
    assert router.metric("mlkube_router_mirror_dropped_total") == 0
    raw = meters["errors"].measure()
    assert (raw.candidate, raw.candidate_samples) == (0.25, 100)
    raw = meters["green"].measure()
    assert (raw.candidate, raw.candidate_samples) == (1.0, 75)  # the 500s are not compared
    raw = meters["red"].measure()
    assert (raw.candidate, raw.candidate_samples) == (0.0, 100)


def test_unreachable_candidate_counts_as_errors_though_clients_get_answers(
    upstreams: dict[str, Upstream], start_router: Any
) -> None:
    from mlkube.devcluster.procs import free_port

    doc = base_config(upstreams, traffic={"blue": 50, "green": 50})
    doc["deployments"]["green"] = {"url": f"http://127.0.0.1:{free_port()}"}  # nobody there
    router = start_router(doc)
    kube = FakeKube()
    kube.put(router_pod("r1", router.metrics_port))
    meter = Meter(kube, builtin("errorRate"), endpoint())
    assert meter.measure().baseline
    results = send(router.url, 50)
    assert {r.status for r in results} == {200} and of(results, "green")[0] == 0
    raw = meter.measure()
    assert raw.candidate == 1.0 and raw.candidate_samples >= 1  # the failed-over attempts


def test_a_router_with_several_workers_is_measured_whole(
    upstreams: dict[str, Upstream], start_router: Any
) -> None:
    # Each worker counts on its own; the metrics port serves them merged (multiprocess mode).
    router = start_router(base_config(upstreams, traffic={"blue": 50, "green": 50}), workers=2)
    kube = FakeKube()
    kube.put(router_pod("r1", router.metrics_port))
    errors = Meter(kube, builtin("errorRate"), endpoint())
    p50 = Meter(kube, builtin("latency", quantile=0.5), endpoint())
    assert errors.measure().baseline and p50.measure().baseline
    results = send(router.url, 120)
    green, green_5xx = of(results, "green")
    raw = errors.measure()
    assert (raw.candidate_samples, raw.candidate) == (green, pytest.approx(green_5xx / green))
    low, high = GREEN_BUCKET
    raw = p50.measure()
    assert raw.candidate_samples == green
    assert raw.candidate == pytest.approx(low + (high - low) * 0.5, abs=0.01)
