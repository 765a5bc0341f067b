"""Serve scikit-learn models through onnxruntime when that gives the same answers.

scikit-learn pays milliseconds of Python overhead per call (a 100-tree forest walks its trees in
Python); the same model converted with skl2onnx answers a single row in tens of microseconds.
The conversion is only used when a parity check on a sample agrees with scikit-learn: equal
labels and probabilities within a tolerance. Otherwise the server keeps scikit-learn and logs
why. Linear models go to numpy first (linear.py): exact, and faster than any session.
`MLKUBE_ONNX_ACCELERATION=0` turns the whole thing off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from mlkube.contract import ENV_ONNX_ACCELERATION
from mlkube_serving.linear import LinearBackend, is_linear, linearize
from mlkube_serving.tensors import Tensor, datatype_of

try:
    from mlkube_serving.onnx_session import densify, make_session, runner

    ONNX_AVAILABLE = True
except ImportError:  # the mlkube-sklearn image has no onnxruntime: serve with scikit-learn
    ONNX_AVAILABLE = False

log = logging.getLogger(__name__)

ENV_PARITY_ATOL = "MLKUBE_ONNX_PARITY_ATOL"
DEFAULT_PARITY_ATOL = 1e-4
SAMPLE_ROWS = 256


def parity_tolerance(raw: str | None) -> float:
    """The probability tolerance; a bad value keeps the default (logged) rather than failing
    the model load over an optimisation setting."""
    if not raw:
        return DEFAULT_PARITY_ATOL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        log.warning("%s=%r is not a non-negative number; using %g", ENV_PARITY_ATOL, raw,
                    DEFAULT_PARITY_ATOL)  # fmt: skip
        return DEFAULT_PARITY_ATOL
    return value


TIE_EPSILON = 1e-5  # float32 vote sums of a few hundred trees stay well inside this


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
        self.onnx_bytes = onnx_bytes  # kept so a batch scorer can hand the conversion on
        self._session = make_session(onnx_bytes)
        self._run = runner(self._session)
        self._input = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        self._classes = classes
        self.classes = classes
        self._flat = flat
        # skl2onnx classifiers: (label, probabilities); regressors: (variable,).
        self._label = names[0]
        self._proba = names[1] if len(names) > 1 and classes is not None else None
        # Set by `accelerate` when scikit-learn's predict is argmax(predict_proba) on the sample.
        self.labels_from_proba = False

    def __call__(self, features: np.ndarray[Any, Any], names: list[str]) -> list[Tensor]:
        feeds = {self._input: features.astype(np.float32, copy=False)}
        if self.labels_from_proba and self._proba is not None:
            proba = densify(self._run([self._proba], feeds)[0])
            if names == ["predict"]:  # the default request: labels only, no dict, no loop
                labels = self._break_ties(proba)
                return [Tensor("predict", labels, datatype_of(labels))]
            arrays = {"predict_proba": proba, "predict": self._break_ties(proba)}
        else:
            wanted = [self._label if n == "predict" else self._proba for n in names]
            arrays = dict(zip(names, map(densify, self._run(wanted, feeds)), strict=True))
        result = []
        for name in names:
            array = arrays[name]
            if name == "predict":
                if self._classes is not None and array.dtype != self._classes.dtype:
                    array = array.astype(self._classes.dtype)
                elif self._flat and array.ndim == 2 and array.shape[1] == 1:
                    array = array.reshape(-1)
            else:  # scikit-learn returns float64 probabilities; keep the served types identical
                array = array.astype(np.float64)
            result.append(Tensor(name, array, datatype_of(array)))
        return result

    def plain_labels(self) -> Callable[[np.ndarray[Any, Any]], list[Tensor]] | None:
        """`self(features, ["predict"])` for a labels-from-probabilities classifier, with the
        output's datatype worked out once (labels are slices of the classes); else None."""
        classes = self._classes
        if not self.labels_from_proba or self._proba is None or classes is None:
            return None
        proba_name, run, feed, break_ties = [self._proba], self._run, self._input, self._break_ties
        datatype = datatype_of(classes)

        def labels(features: np.ndarray[Any, Any]) -> list[Tensor]:
            proba = densify(run(proba_name, {feed: features.astype(np.float32, copy=False)})[0])
            return [Tensor("predict", break_ties(proba), datatype)]

        return labels

    def _break_ties(self, proba: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Labels as scikit-learn picks them: the first class among the (near-)top ones.

        Forest votes tie often (10 of 20 trees each way); float32 sums in a different order
        make such ties unequal by ~1e-7 and onnxruntime's label then follows rounding noise.
        """
        assert self._classes is not None
        if proba.shape[0] == 1:  # the common one-row request: plain floats beat 4 numpy calls
            values = proba[0].tolist()
            top = max(values) - TIE_EPSILON
            first = next(i for i, v in enumerate(values) if v >= top)
            return self._classes[first : first + 1]
        top = proba.max(axis=1, keepdims=True)
        labels: np.ndarray[Any, Any] = self._classes[np.argmax(proba >= top - TIE_EPSILON, axis=1)]
        return labels


def convert(estimator: Any, n_features: int, classifier: bool) -> bytes:
    """Convert with skl2onnx; float32 input of `n_features` columns, no ZipMap."""
    from skl2onnx import to_onnx  # heavy import: only when acceleration is tried

    # Keyed by the estimator's id, as skl2onnx would key a string option for the top model:
    # the same conversion, minus a walk over the model's attributes (~0.2 s for a forest).
    options = {id(estimator): {"zipmap": False}} if classifier else None
    model = to_onnx(estimator, np.zeros((1, n_features), dtype=np.float32), options=options)
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


def predicts_argmax(estimator: Any, sample: np.ndarray[Any, Any]) -> bool:
    """True when the classifier's labels are the first argmax of its probabilities."""
    if not hasattr(estimator, "classes_") or not hasattr(estimator, "predict_proba"):
        return False
    classes = np.asarray(estimator.classes_)
    expected = classes[np.argmax(estimator.predict_proba(sample), axis=1)]
    return bool(np.array_equal(expected, estimator.predict(sample)))


def accelerate(
    estimator: Any, n_features: int | None, sample: np.ndarray[Any, Any] | None = None
) -> tuple[OnnxSklearnBackend | LinearBackend | None, str]:
    """The fastest backend that gives `estimator`'s answers on the sample (numpy for a linear
    model, else onnxruntime), or None; and what happened."""
    if n_features is None:
        return None, "kept scikit-learn: the estimator does not record n_features_in_"
    rows = sample if sample is not None and len(sample) else synthesize_sample(n_features)
    rows = np.asarray(rows, dtype=np.float64)
    declined = ""
    if is_linear(estimator):
        try:
            linear, why = linearize(estimator, rows)
        except Exception as exc:
            linear, why = None, f"the check failed to run ({exc})"
        if linear is not None:
            return linear, f"{why}; parity held on {len(rows)} sample rows"
        declined = f"numpy declined it ({why}); "
    if not ONNX_AVAILABLE:
        return None, f"{declined}kept scikit-learn: this image has no onnxruntime"
    classifier = hasattr(estimator, "classes_")
    try:
        onnx_bytes = convert(estimator, n_features, classifier)
        classes = np.asarray(estimator.classes_) if classifier else None
        backend = OnnxSklearnBackend(onnx_bytes, classes, flat=True)
    except Exception as exc:
        return None, f"{declined}kept scikit-learn: skl2onnx could not convert it ({exc})"
    atol = parity_tolerance(os.environ.get(ENV_PARITY_ATOL))
    try:
        backend.labels_from_proba = predicts_argmax(estimator, rows)
        reason = check_parity(estimator, backend, rows, atol)
    except Exception as exc:
        reason = f"the parity check failed to run ({exc})"
    if reason is not None:
        return None, f"{declined}kept scikit-learn: {reason}"
    return backend, f"{declined}onnxruntime via skl2onnx; parity held on {len(rows)} sample rows"
