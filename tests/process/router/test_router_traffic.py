"""Traffic split, mirroring and header targeting through a real router process."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import requests
from router_harness import V2_PATH, Upstream, base_config, fire, served_by, wait_until


def test_split_follows_weights_within_two_percent(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"blue": 70, "green": 30}))
    results = asyncio.run(fire(router.url + V2_PATH, 10_000, concurrency=64))

    assert Counter(r.status for r in results) == {200: 10_000}
    served = Counter(served_by(r) for r in results)
    assert set(served) == {"blue", "green"}
    assert abs(served["blue"] / 10_000 - 0.70) <= 0.02, served
    # The router's response header names the deployment that really answered.
    assert all(r.deployment == served_by(r) for r in results)
    stats = {name: fresh_upstreams[name].stats() for name in ("blue", "green", "red")}
    assert stats["blue"]["live"] == served["blue"] and stats["green"]["live"] == served["green"]
    assert stats["red"]["live"] == 0 and stats["green"]["mirrored"] == 0


def test_mirror_sends_percent_of_requests_with_header(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    doc = base_config(fresh_upstreams, traffic={"blue": 100}, mirror={"green": 10})
    router = start_router(doc)
    total = 4000
    results = asyncio.run(fire(router.url + V2_PATH, total))

    # Live answers are untouched by mirroring: all from blue, all 200, data intact.
    assert Counter(r.status for r in results) == {200: total}
    assert Counter(served_by(r) for r in results) == {"blue": total}
    outputs = {orjson.dumps(orjson.loads(r.body)["outputs"]) for r in results}
    assert len(outputs) == 1
    green = fresh_upstreams["green"]
    wait_until(lambda: router.metric("mlkube_router_requests_total", kind="mirror") > 0)
    wait_until(lambda: router.mirror_settled())
    stats = green.stats()
    assert stats["live"] == 0, "every copy green saw carried x-mlkube-mirrored: true"
    assert abs(stats["mirrored"] / total - 0.10) <= 0.02, stats
    assert router.metric("mlkube_router_requests_total", kind="mirror") == stats["mirrored"]
    assert fresh_upstreams["blue"].stats()["mirrored"] == 0


def test_header_targeting_bypasses_split_and_mirror(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    doc = base_config(fresh_upstreams, traffic={"blue": 70, "green": 30}, mirror={"red": 50})
    router = start_router(doc)
    to_red = asyncio.run(fire(router.url + V2_PATH, 500, headers={"x-mlkube-deployment": "red"}))
    to_green = asyncio.run(
        fire(router.url + V2_PATH, 500, headers={"azureml-model-deployment": "green"})
    )

    assert Counter(served_by(r) for r in to_red) == {"red": 500}
    assert Counter(served_by(r) for r in to_green) == {"green": 500}
    assert fresh_upstreams["blue"].stats()["live"] == 0
    red = fresh_upstreams["red"].stats()
    assert red == {**red, "live": 500, "mirrored": 0}
    assert router.metric("mlkube_router_requests_total", kind="targeted") == 1000
    assert router.metric("mlkube_router_requests_total", kind="mirror") == 0

    unknown = asyncio.run(fire(router.url + V2_PATH, 1, headers={"x-mlkube-deployment": "purple"}))[
        0
    ]
    assert unknown.status == 404
    reason = orjson.loads(unknown.body)["error"]
    assert "'purple'" in reason and "blue, green, red" in reason


def test_v1_and_seldon_paths_are_proxied_unchanged(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"green": 100}))
    v1 = asyncio.run(
        fire(
            router.url + "/v1/models/credit:predict?trace=1",
            3,
            body=orjson.dumps({"instances": [[1, 2], [3, 4]]}),
        )
    )
    seldon = asyncio.run(
        fire(
            router.url + "/api/v1.0/predictions",
            3,
            body=orjson.dumps({"data": {"ndarray": [[5, 6]]}}),
        )
    )
    assert {r.body for r in v1} == {b'{"predictions":[[1.0,2.0],[3.0,4.0]],"deployment":"green"}'}
    assert {r.body for r in seldon} == {b'{"data":{"ndarray":[[5.0,6.0]]},"meta":{"d":"green"}}'}
    assert fresh_upstreams["green"].stats()["live"] == 6


def test_head_and_get_pass_through_and_keep_the_pool_healthy(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"blue": 100}))
    with requests.Session() as session:
        for _ in range(3):
            head = session.head(router.url + "/v2/health/ready", timeout=5)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["x-mlkube-deployment"] == "blue"
            get = session.get(router.url + "/stats", timeout=5)
            assert get.json()["name"] == "blue"
    results = asyncio.run(fire(router.url + V2_PATH, 20))
    assert Counter(r.status for r in results) == {200: 20}


def test_large_bodies_pass_through_intact(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"green": 100}))
    data = [i * 0.5 for i in range(200_000)]
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [len(data)], "datatype": "FP64", "data": data}]}
    )
    assert len(body) > 1_000_000
    results = asyncio.run(fire(router.url + V2_PATH, 4, concurrency=2, body=body))
    assert [r.status for r in results] == [200] * 4
    assert all(orjson.loads(r.body)["outputs"][0]["data"] == data for r in results)
