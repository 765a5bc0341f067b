"""Config hot reload through a real router: no dropped request, bad files kept out."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from router_harness import V2_PATH, Result, Upstream, base_config, fire, served_by, wait_until


def test_reload_under_load_drops_no_request(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"blue": 100}))
    results: list[Result] = []
    stop = threading.Event()
    url = router.url + V2_PATH
    loader = threading.Thread(
        target=lambda: asyncio.run(fire(url, 10**9, concurrency=32, stop=stop, results=results))
    )
    loader.start()
    # The second swap points "blue" at another server: its old pool is retired mid-load.
    moved = base_config(fresh_upstreams, traffic={"blue": 100})
    moved["deployments"]["blue"] = {"url": fresh_upstreams["red"].url}
    steps = [
        ("green", base_config(fresh_upstreams, traffic={"green": 100})),
        ("red", moved),
        ("blue", base_config(fresh_upstreams, traffic={"blue": 100})),
        ("red", base_config(fresh_upstreams, traffic={"red": 100})),
    ]
    try:
        for target, doc in steps:
            router.update(doc)
            seen = len(results)
            # Under load, wait until the new table is answering (the watcher polls each second).
            wait_until(lambda t=target, s=seen: any(served_by(r) == t for r in results[s:]))
    finally:
        stop.set()
        loader.join()

    assert len(results) > 1000
    assert Counter(r.status for r in results) == {200: len(results)}
    assert router.metric("mlkube_router_requests_total", kind="live") == len(results)
    assert router.metric("mlkube_router_config_reloads_total", result="ok") == 5
    after = asyncio.run(fire(url, 200))
    assert Counter(served_by(r) for r in after) == {"red": 200}


def test_invalid_config_keeps_previous_table(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"green": 100}))
    router.config_dir.write({"config.json": b'{"version": 1, "endpoint": "credit", "trafic": {}}'})
    wait_until(lambda: router.metric("mlkube_router_config_reloads_total", result="error") == 1)
    results = asyncio.run(fire(router.url + V2_PATH, 50))
    assert Counter(served_by(r) for r in results) == {"green": 50}
    assert "unknown key 'trafic'" in router.log()
