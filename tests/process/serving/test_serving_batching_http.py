"""Adaptive batching in a real server process: concurrent clients get exactly the answers a
lone client gets, and their requests did share runtime calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from mlkube import contract as c
from support.serving import ServerProcess, make_data, v2_body


def scrape(server: ServerProcess, name: str) -> float:
    total = 0.0
    for line in requests.get(server.metrics_url, timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_requests_share_calls_and_get_their_own_answers(forest_model: Path) -> None:
    env = {c.ENV_MAX_BATCH_SIZE: "32", c.ENV_MAX_BATCH_LATENCY_MS: "20"}
    server = ServerProcess(forest_model, name="forest", env=env)
    X, _ = make_data()
    url = f"{server.url}/v2/models/forest/infer"
    bodies = [v2_body(X[i : i + 1 + i % 3], id=f"req-{i}") for i in range(96)]
    bad = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    try:
        server.wait_ready()
        alone = [requests.post(url, json=b, timeout=10).json() for b in bodies]
        before = scrape(server, "mlkube_batch_requests_count")
        merged_before = scrape(server, "mlkube_batch_requests_sum")

        def post(body: dict[str, Any]) -> tuple[int, Any]:
            answer = requests.post(url, json=body, timeout=10)
            return answer.status_code, answer.json()

        with ThreadPoolExecutor(16) as pool:
            mixed = [*bodies, bad, *bodies]
            got = list(pool.map(post, mixed))
        calls = scrape(server, "mlkube_batch_requests_count") - before
        merged = scrape(server, "mlkube_batch_requests_sum") - merged_before
    finally:
        code = server.stop()
    assert code == 0, server.output()
    assert [g[1] for g in got[:96]] == alone and [g[1] for g in got[97:]] == alone
    assert all(g[0] == 200 for g in got[:96] + got[97:])
    assert got[96][0] == 400, got[96]  # a request the model refuses fails alone
    assert merged >= 192  # every good request went through the batcher once
    assert calls < merged  # and some of them shared a runtime call
