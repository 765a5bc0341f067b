"""MLflow model directories served without MLflow installed.

An MLflow model is a directory with an `MLmodel` YAML file naming its flavors. The sklearn flavor
is a pickled estimator and the onnx flavor an `.onnx` file, so both are served by the existing
runtimes; the signature's column names and the saved input example (used for the acceleration
parity check) come along.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlkube_serving.errors import ModelLoadError
from mlkube_serving.runtimes.base import ModelRuntime, missing_runtime
from mlkube_serving.runtimes.sklearn import SklearnRuntime, load_estimator
from mlkube_serving.tensors import Tensor

MLMODEL = "MLmodel"


def find_mlmodel(model_path: str) -> Path:
    """Return the directory holding `MLmodel` (the path itself or one level below)."""
    root = Path(model_path)
    if (root / MLMODEL).is_file():
        return root
    found = sorted(root.glob(f"*/{MLMODEL}")) if root.is_dir() else []
    if len(found) == 1:
        return found[0].parent
    raise ModelLoadError(f"no {MLMODEL} file in {model_path!r}")


def read_mlmodel(directory: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load((directory / MLMODEL).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"cannot read {directory / MLMODEL}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise ModelLoadError(f"{directory / MLMODEL} has no flavors")
    return document


def signature_columns(document: dict[str, Any]) -> list[str] | None:
    """Column names of a column-based signature, if every column is named."""
    raw = (document.get("signature") or {}).get("inputs")
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    if not isinstance(specs, list) or not specs:
        return None
    names = [s.get("name") for s in specs if isinstance(s, dict)]
    if len(names) != len(specs) or not all(isinstance(n, str) for n in names):
        return None
    return [str(n) for n in names]


def read_input_example(directory: Path, document: dict[str, Any]) -> np.ndarray[Any, Any] | None:
    """Rows of the saved input example (split-orient JSON), or None when absent or unusable."""
    info = document.get("saved_input_example_info") or {}
    path = directory / str(info.get("artifact_path", "input_example.json"))
    try:
        example = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    rows = example.get("data", example.get("inputs")) if isinstance(example, dict) else example
    try:
        array = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError):
        return None
    return array if array.ndim == 2 else None


class MlflowRuntime(ModelRuntime):
    """Serves the sklearn or onnx flavor of an MLflow model directory."""

    framework = "mlflow"

    def __init__(self, model_path: str) -> None:
        super().__init__(model_path)
        self._inner: ModelRuntime | None = None

    def load(self) -> None:
        directory = find_mlmodel(self.model_path)
        document = read_mlmodel(directory)
        flavors = document["flavors"]
        inner: ModelRuntime
        if "sklearn" in flavors:
            pickled = (flavors["sklearn"] or {}).get("pickled_model", "model.pkl")
            estimator = load_estimator(str(directory / pickled))
            sample = read_input_example(directory, document)
            inner = SklearnRuntime(str(directory), estimator=estimator, sample=sample)
        elif "onnx" in flavors:
            data = (flavors["onnx"] or {}).get("data", "model.onnx")
            try:  # lazily: images without onnxruntime still serve the sklearn flavor
                from mlkube_serving.runtimes.onnx import OnnxRuntime
            except ImportError as exc:
                raise ModelLoadError(missing_runtime("onnx", exc)) from exc
            inner = OnnxRuntime(str(directory / data))
        else:
            raise ModelLoadError(
                f"MLflow flavors {sorted(flavors)} are not served; need sklearn or onnx"
            )
        inner.load()
        self._inner = inner
        self.active_runtime = inner.active_runtime
        self.runtime_note = inner.runtime_note
        self.inputs, self.outputs = inner.inputs, inner.outputs
        self.n_features = inner.n_features
        self.feature_names = inner.feature_names or signature_columns(document)
        if self.feature_names is not None and inner.feature_names is None:
            inner.feature_names = self.feature_names

    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        assert self._inner is not None, "load() first"
        return self._inner.predict(inputs, outputs)
