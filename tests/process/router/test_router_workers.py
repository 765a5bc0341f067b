"""Two worker processes on one socket: traffic flows and one scrape sums both workers."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from router_harness import V2_PATH, Upstream, base_config, fire, served_by, wait_until


def test_two_workers_share_traffic_and_merge_metrics(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    doc = base_config(fresh_upstreams, traffic={"blue": 50, "green": 50}, mirror={"red": 20})
    router = start_router(doc, workers=2)
    results = asyncio.run(fire(router.url + V2_PATH, 2000, concurrency=32))
    assert Counter(r.status for r in results) == {200: 2000}
    served = Counter(served_by(r) for r in results)
    assert abs(served["blue"] / 2000 - 0.5) <= 0.05

    def live_total() -> float:
        return float(router.metric("mlkube_router_requests_total", kind="live"))

    wait_until(lambda: live_total() == 2000)
    wait_until(router.mirror_settled)
    mirrored = fresh_upstreams["red"].stats()["mirrored"]
    assert router.metric("mlkube_router_requests_total", kind="mirror") == mirrored
    assert router.metric("mlkube_router_mirror_compared_total", deployment="red") == mirrored
    assert router.metric("mlkube_router_mirror_agreement_ratio", deployment="red") == 0.0
