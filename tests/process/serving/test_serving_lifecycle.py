"""Process lifecycle: graceful shutdown, startup failures, limits and timeouts, run_local."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from mlkube.devcluster.procs import free_port
from support.serving import ServerProcess, make_data, v2_body


def seldon(url: str, seconds: float) -> requests.Response:
    body = {"data": {"ndarray": [[seconds]]}}
    return requests.post(f"{url}/api/v1.0/predictions", json=body, timeout=10)


def test_sigterm_finishes_in_flight_requests(slow_model: Path) -> None:
    server = ServerProcess(slow_model, name="slow")
    server.wait_ready()
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(answer=seldon(server.url, 1.0)))
    worker.start()
    time.sleep(0.3)  # the request is being served
    started = time.monotonic()
    code = server.stop()
    worker.join(10)
    assert result["answer"].status_code == 200
    assert code == 0, server.output()
    assert time.monotonic() - started < 10


def test_limits_and_timeout_over_http(slow_model: Path) -> None:
    server = ServerProcess(
        slow_model, name="slow", extra_args=["--max-concurrency", "1", "--request-timeout", "0.5"]
    )
    try:
        server.wait_ready()
        result: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: result.update(answer=seldon(server.url, 0.4)))
        worker.start()
        time.sleep(0.15)
        rejected = seldon(server.url, 0.0)
        worker.join(10)
        assert rejected.status_code == 429 and "limit 1" in rejected.json()["error"]
        assert result["answer"].status_code == 200
        late = seldon(server.url, 1.5)
        assert late.status_code == 504 and "0.5" in late.json()["error"]
        assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
    finally:
        server.stop()


def test_broken_model_fails_startup(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"not a pickle")
    for workers in (1, 2):
        server = ServerProcess(tmp_path, name="broken", workers=workers)
        code = server.process.wait(60)
        assert code != 0
        assert "cannot load scikit-learn model" in server.output()


def test_run_local_serves_a_model_file_on_loopback(forest_model: Path) -> None:
    port = free_port()
    script = (
        "from mlkube_serving.server import run_local; "
        f"run_local({str(forest_model / 'model.joblib')!r}, {port})"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        X, _ = make_data()
        url = f"http://127.0.0.1:{port}/v2/models/model/infer"  # named after the file stem
        assert requests.post(url, json=v2_body(X[:1]), timeout=5).status_code == 200
    finally:
        process.terminate()
        assert process.wait(20) == 0


def test_inflight_gauge_counts_requests_being_served(slow_model: Path) -> None:
    """`mlkube_inflight_requests` is what an HPA concurrency target scales on."""

    def inflight() -> float:
        text = requests.get(server.metrics_url, timeout=5).text
        line = next(x for x in text.splitlines() if x.startswith("mlkube_inflight_requests"))
        return float(line.rsplit(" ", 1)[1])

    server = ServerProcess(slow_model, name="slow")
    try:
        server.wait_ready()
        workers = [threading.Thread(target=seldon, args=(server.url, 2.0)) for _ in range(3)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 1.8
        seen = 0.0
        while time.monotonic() < deadline and seen < 3:
            seen = inflight()
            time.sleep(0.1)
        for worker in workers:
            worker.join(10)
        assert seen == 3
        time.sleep(0.7)  # one sampling period after the requests finished
        assert inflight() == 0
    finally:
        server.stop()


def test_scoring_script_missing_module_is_the_termination_message(tmp_path: Path) -> None:
    """A score.py importing a module the image lacks (no environment, or the wrong one): the
    server exits and its termination message names the module, so the endpoint's status can
    (builders/pod_problems.py reads the message's last line)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "score.py").write_text(
        "import mlkube_absent_pkg\n\ndef init():\n    pass\n\ndef run(data):\n    return data\n"
    )
    termination = tmp_path / "termination-log"
    server = ServerProcess(model, name="script", env={"MLKUBE_TERMINATION_LOG": str(termination)})
    code = server.process.wait(60)
    assert code != 0, server.output()
    message = termination.read_text()
    assert "No module named 'mlkube_absent_pkg'" in message, (message, server.output())
    assert message.startswith("model load failed: ")
