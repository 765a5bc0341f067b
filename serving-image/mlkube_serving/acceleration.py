"""Serve scikit-learn models through onnxruntime when that gives the same answers.

scikit-learn pays milliseconds of Python overhead per call (a 100-tree forest walks its trees in
Python); the same model converted with skl2onnx answers a single row in tens of microseconds.
The conversion is only used when a parity check on a sample agrees with scikit-learn: equal
labels and probabilities within a tolerance. Otherwise the server keeps scikit-learn and logs
why. `MLKUBE_ONNX_ACCELERATION=0` turns the whole thing off.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from mlkube.contract import ENV_ONNX_ACCELERATION
from mlkube_serving.runtimes.onnx import densify, make_session
from mlkube_serving.tensors import Tensor, datatype_of

log = logging.getLogger(__name__)

ENV_PARITY_ATOL = "MLKUBE_ONNX_PARITY_ATOL"
DEFAULT_PARITY_ATOL = 1e-4
SAMPLE_ROWS = 256


def acceleration_enabled(environ: dict[str, str] | None = None) -> bool:
    """True unless the env var says 0/false/off/no."""
    value = (environ if environ is not None else os.environ).get(ENV_ONNX_ACCELERATION, "1")
    return value.strip().lower() not in ("0", "false", "off", "no")


def synthesize_sample(n_features: int, rows: int = SAMPLE_ROWS) -> np.ndarray[Any, Any]:
    """A seeded sample spanning narrow and wide values, for models shipped without one."""
    rng = np.random.default_rng(20240611)
    narrow = rng.normal(size=(rows // 2, n_features))
    wide = rng.normal(scale=3.0, size=(rows - rows // 2, n_features))
    return np.vstack([narrow, wide])


class OnnxSklearnBackend:
    """Runs a skl2onnx conversion and returns outputs named and typed like scikit-learn's."""

    def __init__(self, onnx_bytes: bytes, classes: np.ndarray[Any, Any] | None, flat: bool) -> None:
        self._session = make_session(onnx_bytes)
        self._input = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        self._classes = classes
        self._flat = flat
        # skl2onnx classifiers: (label, probabilities); regressors: (variable,).
        self._label = names[0]
        self._proba = names[1] if len(names) > 1 else None

    def __call__(self, features: np.ndarray[Any, Any], names: list[str]) -> list[Tensor]:
        wanted = [self._label if n == "predict" else self._proba for n in names]
        values = self._session.run(wanted, {self._input: features.astype(np.float32, copy=False)})
        result = []
        for name, value in zip(names, values, strict=True):
            array = densify(value)
            if name == "predict":
                if self._classes is not None and array.dtype != self._classes.dtype:
                    array = array.astype(self._classes.dtype)
                elif self._flat and array.ndim == 2 and array.shape[1] == 1:
                    array = array.reshape(-1)
            result.append(Tensor(name, array, datatype_of(array)))
        return result


def convert(estimator: Any, n_features: int, classifier: bool) -> bytes:
    """Convert with skl2onnx; float32 input of `n_features` columns, no ZipMap."""
    from skl2onnx import to_onnx  # heavy import: only when acceleration is tried

    options = {"zipmap": False} if classifier else None
    model = to_onnx(
        estimator, np.zeros((1, n_features), dtype=np.float32), options=options
    )
    return bytes(model.SerializeToString())


def check_parity(
    estimator: Any, backend: OnnxSklearnBackend, sample: np.ndarray[Any, Any], atol: float
) -> str | None:
    """Return None when the backend agrees with scikit-learn on the sample, else the reason."""
    expected = estimator.predict(sample)
    has_proba = hasattr(estimator, "predict_proba")
    got = backend(sample, ["predict", "predict_proba"] if has_proba else ["predict"])
    labels = got[0].data
    if labels.shape != expected.shape:
        return f"prediction shape {labels.shape} differs from scikit-learn's {expected.shape}"
    if has_proba:
        mismatched = int(np.sum(labels != expected))
        if mismatched:
            return f"{mismatched} of {len(sample)} labels differ from scikit-learn"
        gap = float(np.max(np.abs(got[1].data - estimator.predict_proba(sample))))
        if not gap <= atol:
            return f"probabilities differ by up to {gap:.3g} (tolerance {atol:g})"
    elif not np.allclose(labels, expected, rtol=atol, atol=atol):
        gap = float(np.max(np.abs(labels - expected)))
        return f"predictions differ by up to {gap:.3g} (tolerance {atol:g})"
    return None


def accelerate(
    estimator: Any, n_features: int | None, sample: np.ndarray[Any, Any] | None = None
) -> tuple[OnnxSklearnBackend | None, str]:
    """Try to build an ONNX backend for `estimator`; return it (or None) and what happened."""
    if n_features is None:
        return None, "kept scikit-learn: the estimator does not record n_features_in_"
    classifier = hasattr(estimator, "classes_")
    try:
        onnx_bytes = convert(estimator, n_features, classifier)
        classes = np.asarray(estimator.classes_) if classifier else None
        backend = OnnxSklearnBackend(onnx_bytes, classes, flat=True)
    except Exception as exc:
        return None, f"kept scikit-learn: skl2onnx could not convert it ({exc})"
    rows = sample if sample is not None and len(sample) else synthesize_sample(n_features)
    atol = float(os.environ.get(ENV_PARITY_ATOL, DEFAULT_PARITY_ATOL))
    try:
        reason = check_parity(estimator, backend, np.asarray(rows, dtype=np.float64), atol)
    except Exception as exc:
        reason = f"the parity check failed to run ({exc})"
    if reason is not None:
        return None, f"kept scikit-learn: {reason}"
    return backend, f"onnxruntime via skl2onnx; parity held on {len(rows)} sample rows"
