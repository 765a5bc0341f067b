"""The serving image variants (serving-image/Dockerfile VARIANT, docs/environments.md §6): a
model server without onnxruntime (mlkube-sklearn) or without scikit-learn (mlkube-onnx)
starts and serves its own framework, and names the missing runtime for the other one.

Real `python -m mlkube_serving serve` processes; the variant's missing libraries are made
unimportable by packages of the same name that raise ImportError, first on PYTHONPATH (the
server's worker processes inherit it), as they would be absent from the variant's image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import requests
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from support.serving import ServerProcess, build_forest, build_logistic, make_data, v2_body


def without(tmp: Path, *modules: str) -> dict[str, str]:
    """An environment in which `modules` cannot be imported."""
    root = tmp / "blocked"
    for module in modules:
        (root / module).mkdir(parents=True, exist_ok=True)
        (root / module / "__init__.py").write_text(
            f'raise ImportError("No module named {module!r} (not in this image variant)")\n'
        )
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def onnx_model(directory: Path) -> Path:
    X, y = make_data()
    model = to_onnx(LogisticRegression(max_iter=500).fit(X, y), X[:1].astype(np.float32))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    return directory


def predict(server: ServerProcess, name: str) -> requests.Response:
    X, _ = make_data(rows=3, seed=1)
    return requests.post(f"{server.url}/v2/models/{name}/infer", json=v2_body(X), timeout=10)


def test_sklearn_variant_serves_sklearn_without_onnxruntime(tmp_path: Path) -> None:
    env = without(tmp_path, "onnxruntime", "skl2onnx")
    server = ServerProcess(build_forest(tmp_path / "forest"), name="forest", env=env)
    try:
        server.wait_ready()
        answer = predict(server, "forest")
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["outputs"][0]["data"]) == 3
    finally:
        assert server.stop() == 0, server.output()
    assert "kept scikit-learn: this image has no onnxruntime" in server.output()


def test_sklearn_variant_serves_a_linear_model_with_numpy(tmp_path: Path) -> None:
    env = without(tmp_path, "onnxruntime", "skl2onnx")
    server = ServerProcess(build_logistic(tmp_path / "lr"), name="lr", env=env)
    try:
        server.wait_ready()
        assert requests.get(f"{server.url}/v2/models/lr", timeout=10).json()["platform"] == "numpy"
        answer = predict(server, "lr")
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["outputs"][0]["data"]) == 3
    finally:
        assert server.stop() == 0, server.output()


def test_sklearn_variant_names_the_missing_onnx_runtime(tmp_path: Path) -> None:
    env = without(tmp_path, "onnxruntime", "skl2onnx")
    server = ServerProcess(onnx_model(tmp_path / "onnx"), name="lr", env=env)
    try:
        with pytest.raises(AssertionError, match="server exited"):
            server.wait_ready(timeout=60)
    finally:
        server.stop()
    assert "this image cannot serve onnx models" in server.output()
    assert "mlkube-onnx" in server.output()


def test_onnx_variant_serves_onnx_without_scikit_learn(tmp_path: Path) -> None:
    env = without(tmp_path, "sklearn", "joblib", "skl2onnx")
    server = ServerProcess(onnx_model(tmp_path / "onnx"), name="lr", env=env)
    try:
        server.wait_ready()
        answer = predict(server, "lr")
        assert answer.status_code == 200, answer.text
    finally:
        assert server.stop() == 0, server.output()


def test_onnx_variant_names_the_missing_sklearn_runtime(tmp_path: Path) -> None:
    env = without(tmp_path, "sklearn", "joblib", "skl2onnx")
    server = ServerProcess(build_forest(tmp_path / "forest"), name="forest", env=env)
    try:
        with pytest.raises(AssertionError, match="server exited"):
            server.wait_ready(timeout=60)
    finally:
        server.stop()
    assert "this image cannot serve sklearn models" in server.output()
