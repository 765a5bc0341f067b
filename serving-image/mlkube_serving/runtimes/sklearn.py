"""scikit-learn estimators (joblib or pickle files), optionally accelerated: linear models
with numpy (linear.py), the rest with onnxruntime (acceleration.py).

Estimators are forced to one thread: a worker process serves one request at a time and the
server scales with processes, so joblib pools per call would only add latency and contention.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlkube_serving.acceleration import OnnxSklearnBackend, accelerate, acceleration_enabled
from mlkube_serving.errors import InferenceError, InvalidRequest, ModelLoadError
from mlkube_serving.linear import LinearBackend
from mlkube_serving.runtimes.base import (
    ModelRuntime,
    find_artifact,
    missing_runtime,
    select_outputs,
)
from mlkube_serving.tensors import (
    Tensor,
    TensorSpec,
    array_from_json,
    array_json,
    datatype_of,
    to_feature_matrix,
)

log = logging.getLogger(__name__)

SUFFIXES = (".joblib", ".pkl", ".pickle")
Backend = Callable[[np.ndarray[Any, Any], list[str]], list[Tensor]]


def limit_threads(estimator: Any) -> None:
    """Set every `n_jobs` parameter (nested ones in pipelines too) to 1."""
    try:
        params = estimator.get_params(deep=True)
    except Exception:
        return
    updates = {k: 1 for k in params if k == "n_jobs" or k.endswith("__n_jobs")}
    if updates:
        estimator.set_params(**updates)


def load_estimator(path: str) -> Any:
    """Load a joblib or plain pickle file (joblib reads both)."""
    try:
        import joblib
    except ImportError as exc:  # the mlkube-onnx image has no scikit-learn
        raise ModelLoadError(missing_runtime("sklearn", exc)) from exc

    try:
        return joblib.load(path)
    except Exception as exc:
        raise ModelLoadError(f"cannot load scikit-learn model {path}: {exc}") from exc


class SklearnRuntime(ModelRuntime):
    """Serves `predict` (default) and `predict_proba` of a fitted estimator."""

    framework = "sklearn"

    def __init__(
        self,
        model_path: str,
        estimator: Any = None,
        sample: np.ndarray[Any, Any] | None = None,
    ) -> None:
        super().__init__(model_path)
        self.estimator = estimator
        self._sample = sample
        self._available: dict[str, None] = {}
        self._backend: Backend = self._predict_sklearn
        self.plain_predict = self._plain

    def load(self) -> None:
        if self.estimator is None:
            self.estimator = load_estimator(str(find_artifact(self.model_path, SUFFIXES)))
        estimator = self.estimator
        if not hasattr(estimator, "predict"):
            raise ModelLoadError(f"{type(estimator).__name__} has no predict method")
        limit_threads(estimator)
        n_features = getattr(estimator, "n_features_in_", None)
        self.n_features = int(n_features) if n_features is not None else None
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            self.feature_names = [str(n) for n in names]
            # We pass plain arrays in the fitted column order; the warning would fire per call.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self._describe(estimator)
        if not acceleration_enabled():
            self.runtime_note = "scikit-learn (ONNX acceleration turned off)"
            return
        backend, note = accelerate(estimator, self.n_features, self._sample)
        self.runtime_note = note
        if backend is not None:
            self._use(backend)
        log.info("model %s: %s", self.model_path, note)

    def export_accelerated(self) -> tuple[bytes, dict[str, Any]] | None:
        """The ONNX conversion (empty for a linear model: its parameters are in the metadata)
        and what `from_accelerated` needs to serve it without scikit-learn, or None when this
        runtime kept scikit-learn."""
        backend = self._backend
        meta: dict[str, Any] = {
            "nFeatures": self.n_features,
            "featureNames": self.feature_names,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "note": self.runtime_note,
        }
        if isinstance(backend, LinearBackend):  # no ONNX model: the parameters are enough
            return b"", {**meta, "backend": "linear", "linear": backend.export()}
        if not isinstance(backend, OnnxSklearnBackend):
            return None
        classes = backend.classes
        return backend.onnx_bytes, {
            **meta,
            "backend": "onnx",
            "classes": array_json(classes),
            "labelsFromProba": backend.labels_from_proba,
        }

    @classmethod
    def from_accelerated(
        cls, model_path: str, onnx_bytes: bytes, meta: dict[str, Any]
    ) -> SklearnRuntime:
        """A loaded runtime over an exported conversion: no unpickling, no scikit-learn."""
        runtime = cls(model_path)
        runtime.n_features = meta["nFeatures"]
        runtime.feature_names = meta["featureNames"]
        backend: LinearBackend | OnnxSklearnBackend
        if meta["backend"] == "linear":
            backend = LinearBackend.from_export(meta["linear"])
        else:
            backend = OnnxSklearnBackend(onnx_bytes, array_from_json(meta["classes"]), flat=True)
            backend.labels_from_proba = bool(meta["labelsFromProba"])
        specs = [
            [TensorSpec(t["name"], t["datatype"], tuple(t["shape"])) for t in meta[key]]
            for key in ("inputs", "outputs")
        ]
        runtime.inputs, runtime.outputs = specs
        runtime._available = {t.name: None for t in runtime.outputs}
        runtime._use(backend)
        runtime.runtime_note = str(meta["note"])
        return runtime

    def _describe(self, estimator: Any) -> None:
        width = self.n_features if self.n_features is not None else -1
        self.inputs = [TensorSpec("input-0", "FP64", (-1, width))]
        classes = getattr(estimator, "classes_", None)
        label = "FP64" if classes is None else datatype_of(np.asarray(classes))
        self.outputs = [TensorSpec("predict", label, (-1,))]
        self._available = {"predict": None}
        if hasattr(estimator, "predict_proba"):
            n_classes = len(classes) if classes is not None else -1
            self.outputs.append(TensorSpec("predict_proba", "FP64", (-1, n_classes)))
            self._available["predict_proba"] = None

    def _predict_sklearn(self, features: np.ndarray[Any, Any], names: list[str]) -> list[Tensor]:
        result = []
        for name in names:
            array = np.asarray(getattr(self.estimator, name)(features))
            result.append(Tensor(name, array, datatype_of(array)))
        return result

    def _use(self, backend: LinearBackend | OnnxSklearnBackend) -> None:
        self._backend = backend
        self.plain_predict = backend.plain_labels() or self._plain
        self.active_runtime = "numpy" if isinstance(backend, LinearBackend) else "onnxruntime"

    def _plain(self, features: np.ndarray[Any, Any]) -> list[Tensor]:
        # `predict` of a float64 matrix of n_features columns and at least one row, default
        # outputs: its checks all pass, and errors go back to `predict` (v2_plain.py).
        return self._backend(features, ["predict"])

    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        features = to_feature_matrix(inputs, self.n_features, self.feature_names)
        if features.dtype.kind not in "biuf":
            try:
                features = features.astype(np.float64)
            except (ValueError, TypeError) as exc:
                raise InvalidRequest(f"features must be numeric: {exc}") from exc
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise InvalidRequest(
                f"model expects {self.n_features} features per row, got {features.shape[1]}"
            )
        if features.shape[0] == 0:
            raise InvalidRequest("request has no rows")
        names = select_outputs(self._available, outputs, ("predict",))
        try:
            return self._backend(features, names)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"model rejected the input: {exc}") from exc
        except Exception as exc:
            raise InferenceError(f"{self.active_runtime} failed: {exc}") from exc
