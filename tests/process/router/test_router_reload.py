"""Config hot reload through a real router: no dropped request, bad files kept out."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from router_harness import V2_PATH, Upstream, base_config, fire, served_by, wait_until


def test_reload_under_load_drops_no_request(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    router = start_router(base_config(fresh_upstreams, traffic={"blue": 100}))
    results: list[Any] = []

    def load() -> None:
        results.extend(asyncio.run(fire(router.url + V2_PATH, 12_000, concurrency=32)))

    loader = threading.Thread(target=load)
    loader.start()
    swaps = 0
    while loader.is_alive() and swaps < 6:
        time.sleep(0.4)
        target = "green" if swaps % 2 == 0 else "blue"
        router.update(base_config(fresh_upstreams, traffic={target: 100}))
        swaps += 1
    loader.join()

    assert swaps >= 3, "the load finished before the config could be swapped a few times"
    assert Counter(r.status for r in results) == {200: 12_000}
    served = Counter(served_by(r) for r in results)
    assert served["blue"] > 0 and served["green"] > 0
    assert router.metric("mlkube_router_config_reloads_total", result="ok") >= 2

    router.update(base_config(fresh_upstreams, traffic={"red": 100}))
    wait_until(lambda: served_by(asyncio.run(fire(router.url + V2_PATH, 1))[0]) == "red")
    after = asyncio.run(fire(router.url + V2_PATH, 200))
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
