"""Dead and slow upstreams through a real router: 503/504 with reasons, failover, readiness."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import requests
from router_harness import V2_PATH, Upstream, base_config, fire, served_by

from mlkube.devcluster.procs import free_port


def test_dead_upstream_gives_503_with_reason(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    doc = base_config(fresh_upstreams, traffic={"dead": 100})
    doc["deployments"]["dead"] = {"url": dead}
    router = start_router(doc)  # ready: the other deployments answer their probes

    live = asyncio.run(fire(router.url + V2_PATH, 5))
    assert {r.status for r in live} == {503}
    reason = orjson.loads(live[0].body)["error"]
    assert reason.startswith("no deployment is reachable: dead: cannot connect")
    assert "refused" in reason
    targeted = asyncio.run(fire(router.url + V2_PATH, 1, headers={"x-mlkube-deployment": "dead"}))
    assert targeted[0].status == 503
    assert "deployment 'dead' is unreachable" in orjson.loads(targeted[0].body)["error"]
    assert router.metric("mlkube_router_upstream_errors_total", deployment="dead") >= 6


def test_live_traffic_fails_over_when_a_deployment_refuses(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    doc = base_config(fresh_upstreams, traffic={"blue": 50, "dead": 50})
    doc["deployments"]["dead"] = {"url": f"http://127.0.0.1:{free_port()}"}
    router = start_router(doc)
    results = asyncio.run(fire(router.url + V2_PATH, 300))
    assert Counter(r.status for r in results) == {200: 300}
    assert Counter(served_by(r) for r in results) == {"blue": 300}


def test_upstream_timeout_gives_504_and_pool_recovers(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"blue": 100}, timeoutSeconds=0.3))
    slow = asyncio.run(fire(router.url + V2_PATH, 4, headers={"x-test-delay": "1.0"}))
    assert {r.status for r in slow} == {504}
    assert "'blue' did not answer within 0.3 s" in orjson.loads(slow[0].body)["error"]
    fast = asyncio.run(fire(router.url + V2_PATH, 50))
    assert Counter(r.status for r in fast) == {200: 50}
    assert router.metric("mlkube_router_upstream_errors_total", reason="timeout") == 4


def test_readyz_reports_no_reachable_deployment(start_router: Any) -> None:
    doc = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {"gone": {"url": f"http://127.0.0.1:{free_port()}"}},
        "traffic": {"gone": 100},
        "healthIntervalSeconds": 0.2,
    }
    router = start_router(doc, wait_ready=False)
    reply = requests.get(router.url + "/readyz", timeout=5)
    assert reply.status_code == 503
    assert reply.json()["deployments"] == {"gone": False}
    assert requests.get(router.url + "/healthz", timeout=5).status_code == 200
