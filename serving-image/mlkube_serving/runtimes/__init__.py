"""Model runtimes and the table that picks one from a framework name or the files on disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mlkube.contract import ENV_ENTRYPOINT
from mlkube_serving.errors import ModelLoadError
from mlkube_serving.runtimes.base import ModelRuntime, missing_runtime
from mlkube_serving.runtimes.mlflow import MLMODEL, MlflowRuntime
from mlkube_serving.runtimes.scoring_script import DEFAULT_SCRIPT, ScoringScriptRuntime
from mlkube_serving.runtimes.seldon_class import SeldonClassRuntime
from mlkube_serving.runtimes.sklearn import SUFFIXES as SKLEARN_SUFFIXES
from mlkube_serving.runtimes.sklearn import SklearnRuntime

__all__ = ["FRAMEWORKS", "ModelRuntime", "create_runtime", "detect_framework"]


def _onnx(model_path: str) -> ModelRuntime:
    """Imported on use: serving image variants without onnxruntime (mlkube-sklearn) start and
    serve their own frameworks."""
    try:
        from mlkube_serving.runtimes.onnx import OnnxRuntime
    except ImportError as exc:
        raise ModelLoadError(missing_runtime("onnx", exc)) from exc
    return OnnxRuntime(model_path)


# Framework names users may give (`spec.framework`, `--framework`) -> runtime factory.
FRAMEWORKS: dict[str, Callable[[str], ModelRuntime]] = {
    "sklearn": SklearnRuntime,
    "onnx": _onnx,
    "mlflow": MlflowRuntime,
    "scoring_script": ScoringScriptRuntime,
    "azureml": ScoringScriptRuntime,
    "seldon": SeldonClassRuntime,
}


def detect_framework(model_path: str) -> str:
    """Guess the framework from the files: MLmodel, score.py, .onnx, pickles, a Seldon class."""
    path = Path(model_path)
    if path.is_file():
        if path.name == MLMODEL:
            return "mlflow"
        if path.suffix == ".onnx":
            return "onnx"
        if path.name.endswith(SKLEARN_SUFFIXES):
            return "sklearn"
        if path.suffix == ".py":
            return "scoring_script"
        raise ModelLoadError(f"cannot tell the framework of {model_path!r}; pass --framework")
    if not path.is_dir():
        raise ModelLoadError(f"model path {model_path!r} does not exist")
    if (path / MLMODEL).is_file() or len(list(path.glob(f"*/{MLMODEL}"))) == 1:
        return "mlflow"
    if (path / DEFAULT_SCRIPT).is_file() or os.environ.get(ENV_ENTRYPOINT, "").endswith(".py"):
        return "scoring_script"
    files = [p.name for p in path.rglob("*") if p.is_file()]
    if any(name.endswith(".onnx") for name in files):
        return "onnx"
    if any(name.endswith(SKLEARN_SUFFIXES) for name in files):
        return "sklearn"
    if any(name.endswith(".py") for name in files):
        return "seldon"
    raise ModelLoadError(f"no model files found in {model_path!r}")


def resolve_framework(model_path: str, framework: str | None = None) -> str:
    """The runtime's name for a model path: the declared framework, else detected; `custom`
    means a scoring script or a Seldon class, never a detected sklearn/ONNX file."""
    name = (framework or "").strip().lower() or detect_framework(model_path)
    if name == "custom":
        detected = detect_framework(model_path)
        name = detected if detected in ("scoring_script", "seldon") else "seldon"
    return name


def create_runtime(model_path: str, framework: str | None = None) -> ModelRuntime:
    """Build the runtime for a model path; `custom` means a scoring script or a Seldon class."""
    name = resolve_framework(model_path, framework)
    factory = FRAMEWORKS.get(name)
    if factory is None:
        known = ", ".join(sorted([*FRAMEWORKS, "custom"]))
        raise ModelLoadError(f"unknown framework {name!r}; known: {known}")
    return factory(model_path)
