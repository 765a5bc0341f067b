"""The real model server and the real drift sidecar sharing a spool directory: samples reach
the sidecar through the shared-memory rings (the server's sidecar URL leads nowhere), shifted
traffic moves the drift metric, and the ring of a stopped server is drained and removed."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from mlkube.devcluster.procs import free_port
from mlkube_serving.drift.profile import build_profile, write_profile
from mlkube_serving.drift_ring import ring_files
from support.serving import ServerProcess, build_forest, make_data, v2_body

WINDOW = 200
Runner = Callable[..., Any]


@pytest.fixture
def spool_dir() -> Iterator[Path]:
    """A memory-backed directory where there is one (as the pod's emptyDir {medium: Memory})."""
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="mlkube-spool-", dir=where) as d:
        yield Path(d)


def wait_for(done: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_samples_travel_through_the_spool_and_drift_is_detected(
    tmp_path: Path, spool_dir: Path, sidecar_runner: Runner
) -> None:
    X, _ = make_data(rows=2000)
    model_dir = build_forest(tmp_path / "forest")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    profile = tmp_path / "profile.json"
    write_profile(build_profile(frame, window_size=WINDOW, bootstrap_windows=200), profile)
    flags = ("--eval-interval", "0.2", "--spool-dir", str(spool_dir), "--spool-interval", "0.05")
    with sidecar_runner(profile, *flags) as sidecar:
        # Nothing listens at the URL: whatever the sidecar receives came through the spool.
        env = {
            "MLKUBE_DRIFT_URL": f"http://127.0.0.1:{free_port()}",
            "MLKUBE_DRIFT_SAMPLE_RATE": "1",
            "MLKUBE_DRIFT_SPOOL_DIR": str(spool_dir),
        }
        server = ServerProcess(model_dir, name="forest", env=env)
        try:
            server.wait_ready()
            assert len(ring_files(spool_dir)) == 1  # the worker's ring
            shifted = X[:300] + 3.0
            with requests.Session() as http:
                for i in range(300):
                    answer = http.post(f"{server.url}/v2/models/forest/infer",
                                       json=v2_body(shifted[i : i + 1]), timeout=5)  # fmt: skip
                    assert answer.status_code == 200

            def summary() -> dict[str, Any]:
                got: dict[str, Any] = requests.get(sidecar.url + "/v1/summary", timeout=5).json()
                return got

            done = wait_for(lambda: (s := summary())["samplesReceived"] == 300
                            and s["datasetDrift"]["detected"] and s)  # fmt: skip
            assert done, summary()
            assert done["samplesDropped"] == 0 and done["windowSamples"] == WINDOW
            drifted = [f["name"] for f in done["features"] if f["drifted"]]
            assert len(drifted) >= 10, drifted
            metrics = requests.get(sidecar.metrics_url, timeout=5).text
            assert "mlkube_drift_detected 1.0" in metrics
            sent = 'mlkube_drift_samples_sent_total{model="forest"} 300.0'
            # published by the hook's task once a second
            assert wait_for(lambda: sent in requests.get(server.metrics_url, timeout=5).text)
        finally:
            assert server.stop() == 0, server.output()
        # The worker is gone: the sidecar drains its ring and removes it.
        assert wait_for(lambda: ring_files(spool_dir) == [] and not list(spool_dir.iterdir()))
