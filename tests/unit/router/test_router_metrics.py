"""Router metrics: cached label children and the agreement ratio derived at scrape time."""

from __future__ import annotations

from prometheus_client import generate_latest

from mlkube_serving.router.metrics import AgreementRatioCollector, RouterMetrics


def test_ratio_is_derived_from_counters_at_scrape_time() -> None:
    metrics = RouterMetrics()
    metrics.registry.register(AgreementRatioCollector(metrics.source_for_ratio()))
    for _ in range(4):
        metrics.mirror_compared.labels("green").inc()
    for _ in range(3):
        metrics.mirror_agreement.labels("green").inc()
    metrics.mirror_compared.labels("red").inc()
    metrics.observe_request("green", 200, "live", 0.002)
    metrics.observe_request("green", 200, "live", 0.004)
    text = generate_latest(metrics.registry).decode()
    assert 'mlkube_router_mirror_agreement_ratio{deployment="green"} 0.75' in text
    assert 'mlkube_router_mirror_agreement_ratio{deployment="red"} 0.0' in text
    assert 'mlkube_router_requests_total{deployment="green",kind="live",status="200"} 2.0' in text
    count = 'mlkube_router_request_duration_seconds_count{deployment="green",kind="live"} 2.0'
    assert count in text
