"""The drift sidecar as a real process: shifted traffic over HTTP is detected and exported."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
from prometheus_client.parser import text_string_to_metric_families

from mlkube_serving.drift import synthetic
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.tensors import Tensor

SPEC_METRICS = {
    "mlkube_drift_score": {"feature", "method"},
    "mlkube_drift_threshold": {"feature", "method"},
    "mlkube_drift_detected": set(),
    "mlkube_drift_drifted_features_ratio": set(),
    "mlkube_feature_null_ratio": {"feature"},
    "mlkube_drift_window_samples": set(),
    "mlkube_drift_samples_received": set(),
    "mlkube_drift_samples_dropped": set(),
    "mlkube_drift_evaluation_seconds": {"le"},
}
METHODS = {"wasserstein", "ks", "psi", "jensenshannon"}
WINDOW = 500  # the profile_path fixture's window size
Runner = Callable[..., Any]


def poll_summary(
    sidecar: Any, done: Callable[[dict[str, Any]], bool], timeout: float = 15.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        summary: dict[str, Any] = requests.get(sidecar.url + "/v1/summary", timeout=5).json()
        if done(summary) or time.monotonic() > deadline:
            return summary
        time.sleep(0.05)


def test_shifted_traffic_is_detected_and_exported(
    profile_path: Path, sidecar_runner: Runner
) -> None:
    env = {"MLKUBE_DRIFT_MAX_FEATURE_SERIES": "10"}
    with sidecar_runner(profile_path, "--eval-interval", "0.2", env=env) as sidecar:
        moved = {f"x{i}": 0.5 for i in range(10)}
        cols = synthetic.make_columns(1500, seed=21, shift=moved, new_categories={"c0": 0.1})
        with requests.Session() as http:
            for payload in synthetic.to_payloads(cols, 100):
                response = http.post(sidecar.url + "/v1/samples", data=orjson.dumps(payload))
                assert response.status_code == 202
        summary = poll_summary(
            sidecar, lambda s: s["datasetDrift"]["detected"] and s["samplesReceived"] == 1500
        )
        assert summary["datasetDrift"]["detected"], summary["datasetDrift"]
        assert summary["windowSize"] == WINDOW and summary["windowSamples"] == WINDOW
        assert summary["samplesReceived"] == 1500 and summary["samplesDropped"] == 0
        features = {f["name"]: f for f in summary["features"]}
        assert all(features[f"x{i}"]["drifted"] for i in range(10))
        assert features["c0"]["drifted"] and 0.05 < features["c0"]["unseenRatio"] < 0.15
        assert features["x13"]["nullRatio"] > 0
        time.sleep(0.3)  # let the worker's last evaluation land before scraping
        text = requests.get(sidecar.metrics_url, timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, allowed in SPEC_METRICS.items():
        assert name in families, name
        keys = {k for s in families[name].samples for k in s.labels}
        assert keys <= allowed, (name, keys)
    top = {f"x{i}" for i in range(10)}  # the 10 most important features only
    for name in ("mlkube_drift_score", "mlkube_drift_threshold", "mlkube_feature_null_ratio"):
        assert {s.labels["feature"] for s in families[name].samples} == top
    assert {s.labels["method"] for s in families["mlkube_drift_score"].samples} <= METHODS
    assert families["mlkube_drift_detected"].samples[0].value == 1.0
    assert families["mlkube_drift_drifted_features_ratio"].samples[0].value >= 0.5
    assert families["mlkube_drift_window_samples"].samples[0].value == WINDOW
    received = [
        s for s in families["mlkube_drift_samples_received"].samples if s.name.endswith("_total")
    ]
    assert received[0].value == 1500
    # Label values are feature/method names or histogram bounds, never data values or bins.
    for family in families.values():
        for sample in family.samples:
            for key, value in sample.labels.items():
                assert key == "le" or value in top | METHODS, (sample.name, key, value)


def test_samples_from_the_model_servers_hook_are_understood(
    profile_path: Path, sidecar_runner: Runner
) -> None:
    """The real sender (drift_hook.DriftHook) against the real sidecar: the wire format agrees."""
    with sidecar_runner(profile_path, "--eval-interval", "0.2") as sidecar:

        async def serve_and_stop() -> None:
            # The hook lives on the server worker's event loop, as in the model server.
            hook = DriftHook(sidecar.url, sample_rate=1.0, max_rows=64)
            hook.start()
            cols = synthetic.make_columns(640, seed=22, shift={"x0": 1.0})
            matrix = np.column_stack([cols[n] for n in synthetic.NUMERIC_FEATURES])
            for i in range(0, 640, 64):
                rows = matrix[i : i + 64]
                scores = cols[synthetic.PREDICTION][i : i + 64]
                hook.offer(
                    "synthetic",
                    synthetic.NUMERIC_FEATURES,
                    [Tensor("input", rows, "FP64")],
                    [Tensor("predict", scores, "FP64")],
                )
                await asyncio.sleep(0)
            await hook.stop(timeout=10)

        asyncio.run(serve_and_stop())
        summary = poll_summary(sidecar, lambda s: s["samplesReceived"] == 640 and s["ready"])
    assert summary["samplesReceived"] == 640 and summary["samplesDropped"] == 0
    features = {f["name"]: f for f in summary["features"]}
    assert features["x0"]["drifted"] and not features["x5"]["drifted"]
    assert features["c0"]["nullRatio"] == 1.0  # the hook sent only the numeric columns
    assert summary["prediction"]["count"] == WINDOW


def test_bad_profile_fails_fast(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_bytes(b'{"formatVersion": 99}')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlkube_serving",
            "drift-sidecar",
            "--profile",
            str(tmp_path / "p.json"),
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"formatVersion" in result.stderr


def test_sigterm_stops_cleanly(profile_path: Path, sidecar_runner: Runner) -> None:
    with sidecar_runner(profile_path) as sidecar:
        sidecar.process.terminate()
        # uvicorn re-raises the signal after its graceful shutdown, so -15 is a clean exit too.
        assert sidecar.process.wait(timeout=10) in (0, -15)
        assert sidecar.process.stdout is not None
        assert b"drift sidecar stopped: 0 rows received" in sidecar.process.stdout.read()
