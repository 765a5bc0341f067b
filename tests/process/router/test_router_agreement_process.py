"""Mirror agreement metrics through a real router, for V2, KServe V1 and Seldon responses."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from router_harness import V2_PATH, Upstream, base_config, fire, wait_until


def test_agreement_counts_agreements_and_disagreements(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    # green computes what blue computes; red doubles every value.
    doc = base_config(fresh_upstreams, traffic={"blue": 100}, mirror={"green": 100, "red": 100})
    router = start_router(doc)
    asyncio.run(fire(router.url + V2_PATH, 300))
    asyncio.run(
        fire(
            router.url + "/v1/models/credit:predict",
            50,
            body=orjson.dumps({"instances": [[0.25, 4]]}),
        )
    )
    asyncio.run(
        fire(
            router.url + "/api/v1.0/predictions",
            50,
            body=orjson.dumps({"data": {"ndarray": [[7, 8]]}}),
        )
    )

    def compared(name: str) -> float:
        return float(router.metric("mlkube_router_mirror_compared_total", deployment=name))

    wait_until(lambda: compared("green") == 400 and compared("red") == 400)
    assert router.metric("mlkube_router_mirror_agreement_total", deployment="green") == 400
    assert router.metric("mlkube_router_mirror_agreement_total", deployment="red") == 0
    assert router.metric("mlkube_router_mirror_agreement_ratio", deployment="green") == 1.0
    assert router.metric("mlkube_router_mirror_agreement_ratio", deployment="red") == 0.0
    assert router.metric("mlkube_router_mirror_dropped_total") == 0
