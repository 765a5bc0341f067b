"""The Prometheus provider against Debian's real Prometheus server scraping a real router, and
the web provider against a real HTTP server process. The Prometheus numbers are checked
against the router's own counters and against the built-in provider (the same window), and
Prometheus' own histogram_quantile checks the built-in quantile's interpolation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from rollout_harness import DEV, Meter, Prometheus, builtin, endpoint, router_pod, send
from router_harness import Upstream, base_config, wait_until

from mlkube.builders.operator_config import LOOPBACK_NETWORKS, OperatorConfig
from mlkube.controllers.rollout_providers import measure_metric
from support.fake_kube import FakeKube

PROD = OperatorConfig(pod_networks=LOOPBACK_NETWORKS)


def prom(address: str, query: str, config: OperatorConfig = DEV) -> Any:
    metric = {"name": "q", "provider": {"prometheus": {"address": address, "query": query}}}
    raw, state = measure_metric(endpoint(), metric, FakeKube(), config)
    assert state is None
    return raw


def web(url: str, path: str, config: OperatorConfig = DEV) -> Any:
    metric = {"name": "w", "provider": {"web": {"url": url, "jsonPath": path, "timeout": "3s"}}}
    return measure_metric(endpoint(), metric, FakeKube(), config)[0]


def test_prometheus_provider_on_a_real_prometheus_scraping_a_router(
    upstreams: dict[str, Upstream], start_router: Any, prometheus: Prometheus
) -> None:
    router = start_router(base_config(upstreams, traffic={"blue": 50, "green": 50}))
    prometheus.scrape([f"127.0.0.1:{router.metrics_port}"])
    kube = FakeKube()
    kube.put(router_pod("r1", router.metrics_port))
    errors = Meter(kube, builtin("errorRate"), endpoint())
    p90 = Meter(kube, builtin("latency", quantile=0.9, compare="ratio"), endpoint())
    assert errors.measure().baseline and p90.measure().baseline  # a fresh router: from zero
    send(router.url, 200)

    green = 'deployment="green",kind="live"'
    total = f"sum(mlkube_router_requests_total{{{green}}})"
    wanted = router.metric("mlkube_router_requests_total", deployment="green", kind="live")
    wait_until(lambda: prom(prometheus.url, total).candidate == wanted, timeout=60)

    rate = prom(
        prometheus.url,
        f'sum(mlkube_router_requests_total{{{green},status=~"5.."}}) / {total}',
    )
    builtin_rate = errors.measure()
    assert rate.error is None and rate.candidate_samples == 1
    assert rate.candidate == pytest.approx(builtin_rate.candidate) and rate.candidate > 0

    builtin_p90 = p90.measure()
    for name, value in (("green", builtin_p90.candidate), ("blue", builtin_p90.stable)):
        query = (
            "histogram_quantile(0.9, sum by (le) (mlkube_router_request_duration_seconds_bucket"
            f'{{deployment="{name}"}}))'
        )
        assert prom(prometheus.url, query).candidate == pytest.approx(value, rel=1e-9), name

    many = prom(prometheus.url, "mlkube_router_requests_total")
    assert many.error is not None and "series" in many.error
    none = prom(prometheus.url, 'mlkube_router_requests_total{deployment="nobody"}')
    assert (none.candidate, none.error) == (None, None)
    nan = prom(prometheus.url, "0/0")
    assert (nan.candidate, nan.error) == (None, None)
    bad = prom(prometheus.url, "sum(")
    assert bad.error is not None and "HTTP 400" in bad.error
    refused = prom(prometheus.url, total, PROD)  # loopback: dev mode only
    assert refused.error is not None and "loopback" in refused.error
    # Prometheus down: an Error measurement, quickly
    prometheus.proc.terminate()
    prometheus.proc.wait(timeout=30)
    down = prom(prometheus.url, total)
    assert down.error is not None and down.error.startswith("prometheus: 127.0.0.1")


def test_web_provider_on_a_real_http_server(web_root: tuple[str, Path]) -> None:
    url, root = web_root
    (root / "value.json").write_text('{"data": {"values": [{"v": "0.125"}, 3]}}')
    assert web(url + "/value.json", "$.data.values[0].v").candidate == 0.125
    assert web(url + "/value.json", "$.data.values[1]").candidate == 3.0
    absent = web(url + "/value.json", "$.data.other")
    assert absent.error is not None and "nothing at" in absent.error
    missing = web(url + "/missing.json", "$.a")
    assert missing.error is not None and "HTTP 404" in missing.error
    (root / "page.html").write_text("<html>secret</html>")
    page = web(url + "/page.html", "$.a")
    assert page.error is not None and "not JSON" in page.error and "secret" not in page.error
    (root / "big.json").write_bytes(b"[" + b"1," * 600_000 + b"1]")
    big = web(url + "/big.json", "$[0]")
    assert big.error is not None and "larger than" in big.error
    assert requests.get(url + "/value.json", timeout=5).status_code == 200  # still serving


def test_web_provider_against_a_hostile_server(hostile_http: str) -> None:
    started = time.monotonic()
    slow = measure_metric(
        endpoint(),
        {"provider": {"web": {"url": hostile_http + "/slow", "jsonPath": "$", "timeout": "1s"}}},
        FakeKube(),
        DEV,
    )[0]
    assert slow.error is not None and "within 1 s" in slow.error
    assert time.monotonic() - started < 5  # the timeout bounds the whole exchange
    endless = web(hostile_http + "/endless", "$")
    assert endless.error is not None
    assert "larger than" in endless.error or "within" in endless.error
    loops = web(hostile_http + "/to/to/to/to/to/x", "$")  # more redirects than allowed
    assert loops.error is not None and "redirects" in loops.error
