"""B9: the model server bounds the bytes of request bodies it holds, not just their count.

Bodies waiting for the inference thread used to be limited only by `--max-concurrency` (256
per worker) times the body cap (32 MiB): 8 GiB against a pod's memory limit. Now they reserve
their size in a queued-bytes budget; what does not fit is refused with a reason.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import requests

from support.serving import ServerProcess

BUDGET = 1024 * 1024


def padded(seconds: float, size: int) -> bytes:
    """A Seldon body whose first value is the sleep time, padded with zeros to ~`size` bytes."""
    zeros = max(0, (size - 40) // 2)
    return orjson.dumps({"data": {"ndarray": [[seconds] + [0] * zeros]}})


def post(url: str, body: bytes) -> requests.Response:
    headers = {"content-type": "application/json"}
    return requests.post(f"{url}/api/v1.0/predictions", data=body, headers=headers, timeout=30)


def test_queued_bytes_past_the_budget_are_refused_with_a_reason(slow_model: Path) -> None:
    server = ServerProcess(slow_model, name="slow", env={"MLKUBE_MAX_QUEUED_BYTES": str(BUDGET)})
    try:
        server.wait_ready()
        body = padded(1.0, 300 * 1024)  # four of these pass the budget; each sleeps 1 s
        answers: list[requests.Response] = []
        lock = threading.Lock()

        def one() -> None:
            answer = post(server.url, body)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        for thread in threads:
            thread.join(60)
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(200) == 3, statuses  # 3 x 300 KiB fit in 1 MiB
        assert statuses.count(503) == 3, statuses
        refused = next(a for a in answers if a.status_code == 503)
        assert "MLKUBE_MAX_QUEUED_BYTES" in refused.json()["error"]

        whole = post(server.url, padded(0.0, 2 * BUDGET))  # could never fit: 413, not 503
        assert whole.status_code == 413
        assert "queued-bytes budget" in whole.json()["error"]

        # Every reservation was released: the full budget serves again.
        assert post(server.url, padded(0.0, 300 * 1024)).status_code == 200
    finally:
        server.stop()


def test_a_timed_out_body_stays_reserved_until_the_thread_is_done_with_it(
    slow_model: Path,
) -> None:
    """The timeout answers the client, but the inference thread still holds the body."""
    env = {"MLKUBE_MAX_QUEUED_BYTES": str(BUDGET), "MLKUBE_REQUEST_TIMEOUT_SECONDS": "0.5"}
    server = ServerProcess(slow_model, name="slow", env=env)
    try:
        server.wait_ready()
        started = time.monotonic()
        late = post(server.url, padded(3.0, 600 * 1024))  # runs 3 s; answered at 0.5 s
        assert late.status_code in (408, 504), late.text
        # 600 KiB more would pass 1 MiB while the thread still holds the first body: 503.
        refused = post(server.url, padded(0.0, 600 * 1024))
        assert time.monotonic() - started < 2.5  # the first inference is still running
        assert refused.status_code == 503, refused.text
        assert "MLKUBE_MAX_QUEUED_BYTES" in refused.json()["error"]
        # Once the thread is done the bytes come back.
        deadline = time.monotonic() + 10
        while (answer := post(server.url, padded(0.0, 600 * 1024))).status_code == 503:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - started >= 2.5
    finally:
        server.stop()
