"""Small models and a real model-server process for the serving tests (unit and process tiers)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import requests
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlkube.devcluster.procs import free_port

N_FEATURES = 20


def make_data(rows: int = 200, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A tiny binary classification set with 20 float features."""
    X, y = make_classification(n_samples=rows, n_features=N_FEATURES, random_state=seed)
    return X, y


def write_sklearn(directory: Path, estimator: Any, name: str = "model.joblib") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, directory / name)
    return directory


def build_forest(directory: Path, trees: int = 10) -> Path:
    X, y = make_data()
    forest = RandomForestClassifier(n_estimators=trees, max_depth=6, random_state=0, n_jobs=2)
    return write_sklearn(directory, forest.fit(X, y))


def build_logistic(directory: Path) -> Path:
    X, y = make_data()
    return write_sklearn(directory, LogisticRegression(max_iter=500).fit(X, y))


def build_mlflow(directory: Path) -> Path:
    """An MLflow sklearn-flavor directory, written by hand (MLflow is not installed)."""
    X, y = make_data()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "model.pkl", "wb") as handle:  # MLflow writes plain pickles
        pickle.dump(LogisticRegression(max_iter=500).fit(X, y), handle)
    columns = [{"type": "double", "name": f"f{i}", "required": True} for i in range(N_FEATURES)]
    (directory / "MLmodel").write_text(
        "artifact_path: model\n"
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n"
        "  sklearn:\n"
        "    pickled_model: model.pkl\n"
        "    serialization_format: pickle\n"
        "signature:\n"
        f"  inputs: '{json.dumps(columns)}'\n"
        "saved_input_example_info:\n"
        "  artifact_path: input_example.json\n"
        "  type: dataframe\n"
        "  pandas_orient: split\n"
    )
    example = {"columns": [c["name"] for c in columns], "data": X[:5].tolist()}
    (directory / "input_example.json").write_text(json.dumps(example))
    return directory


def v2_body(rows: np.ndarray[Any, Any], **extra: Any) -> dict[str, Any]:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64"}
    body: dict[str, Any] = {"inputs": [{**tensor, "data": rows.tolist()}]}
    body.update(extra)
    return body


class ServerProcess:
    """`python -m mlkube_serving serve` as a subprocess on free loopback ports."""

    def __init__(
        self,
        model_dir: Path,
        name: str = "model",
        workers: int = 1,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        args = [
            sys.executable, "-m", "mlkube_serving", "serve",
            "--model-dir", str(model_dir), "--name", name, "--host", "127.0.0.1",
            "--port", str(self.port), "--metrics-port", str(self.metrics_port),
            "--workers", str(workers), *extra_args,
        ]  # fmt: skip
        full_env = {**os.environ, **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            args, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, text=True
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}: {self.output()}")
            try:
                if requests.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        """Everything the server printed so far."""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read()
        self._log.seek(0, os.SEEK_END)
        return text
