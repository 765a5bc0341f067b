"""Init container then server, as in a pod: download over HTTP, verify, serve what was fetched."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mlkube.devcluster.procs import free_port
from mlkube.storage import compute_digest
from support.serving import ServerProcess, make_data, v2_body


@pytest.fixture
def http_store(forest_model: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(forest_model)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(10)


def initializer(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlkube_serving", "storage-initializer", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_initializer_then_server(http_store: str, forest_model: Path, tmp_path: Path) -> None:
    digest = compute_digest((forest_model / "model.joblib").as_uri()).digest
    dest = tmp_path / "mnt-models"
    done = initializer(
        "--uri", f"{http_store}/model.joblib", "--dest", str(dest), "--digest", digest
    )
    assert done.returncode == 0, done.stderr
    assert digest in done.stdout
    server = ServerProcess(dest, name="fetched")
    try:
        server.wait_ready()
        X, _ = make_data()
        answer = requests.post(
            f"{server.url}/v2/models/fetched/infer", json=v2_body(X[:2]), timeout=5
        )
        assert answer.status_code == 200
    finally:
        server.stop()


def test_initializer_rejects_a_changed_artifact(http_store: str, tmp_path: Path) -> None:
    wrong = "sha256:" + "ab" * 32
    dest = tmp_path / "mnt-models"
    done = initializer(
        "--uri", f"{http_store}/model.joblib", "--dest", str(dest), "--digest", wrong
    )
    assert done.returncode == 3
    assert "digest mismatch" in done.stderr and wrong in done.stderr
    assert not any(dest.iterdir())
