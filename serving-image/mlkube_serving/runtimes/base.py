"""The contract every model runtime implements: `load()` once, then `predict()` per request.

Runtimes know nothing about HTTP or protocols; they take and return `Tensor`s. Whatever they
learn at load time (signature, feature names, which engine really runs) is plain attributes the
dataplane reads for metadata and metrics.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mlkube_serving.errors import InvalidRequest, ModelLoadError
from mlkube_serving.tensors import Tensor, TensorSpec


class ModelRuntime(ABC):
    """Base class of all runtimes."""

    # Framework name as users write it in `spec.framework` / `--framework`.
    framework: ClassVar[str] = "custom"
    # False for user code (scoring scripts, Seldon classes): always run off the event loop.
    inline_safe: ClassVar[bool] = True

    def __init__(self, model_path: str) -> None:
        self.model_path = model_path
        # The engine that actually executes predictions ("sklearn", "onnxruntime", ...).
        self.active_runtime: str = self.framework
        # Why the active runtime was chosen (acceleration on, off, or fallen back and why).
        self.runtime_note: str = ""
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.feature_names: list[str] | None = None
        self.n_features: int | None = None
        # What `predict(one 2-D FP64 input of n_features columns, None)` returns, minus the
        # checks such an input passes anyway (v2_plain.py); None: no such shortcut.
        self.plain_predict: Callable[[np.ndarray[Any, Any]], list[Tensor]] | None = None

    @abstractmethod
    def load(self) -> None:
        """Read the artifact and make the model ready to predict."""

    @abstractmethod
    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        """Run the model; return the requested outputs (the default ones when None)."""

    def sample_inputs(self, rows: int) -> list[Tensor] | None:
        """Inputs to warm the model up with, or None when the input shape is unknown."""
        if self.n_features is None:
            return None
        data = np.random.default_rng(0).normal(size=(rows, self.n_features))
        return [Tensor("input-0", data.astype(np.float32), "FP32")]


def find_artifact(model_path: str, suffixes: Iterable[str]) -> Path:
    """Return the model file: the path itself, or the single file with a known suffix inside it."""
    path = Path(model_path)
    wanted = tuple(suffixes)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ModelLoadError(f"model path {model_path!r} does not exist")
    candidates = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(wanted))
    if not candidates:
        raise ModelLoadError(f"no model file ending in {', '.join(wanted)} under {model_path!r}")
    if len(candidates) > 1:
        preferred = [p for p in candidates if p.stem == "model"]
        if len(preferred) == 1:
            return preferred[0]
        names = ", ".join(str(p.relative_to(path)) for p in candidates)
        raise ModelLoadError(f"several model files under {model_path!r}: {names}")
    return candidates[0]


def model_dir_of(model_path: str) -> str:
    """The directory holding the model (the path itself, or a file's parent)."""
    return model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path))


def select_outputs(
    available: dict[str, Any], requested: Sequence[str] | None, default: Sequence[str]
) -> list[str]:
    """Validate requested output names against what the model offers."""
    if not requested:
        return list(default)
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise InvalidRequest(
            f"unknown output(s) {', '.join(map(repr, unknown))}; available: {', '.join(available)}"
        )
    return list(requested)


def missing_runtime(framework: str, exc: ImportError) -> str:
    """Why an image variant without `framework`'s libraries cannot serve such a model."""
    return (
        f"this image cannot serve {framework} models: {exc} (a serving image variant without "
        f"that runtime; use an environment built on mlkube-{framework} or mlkube-mlflow)"
    )
