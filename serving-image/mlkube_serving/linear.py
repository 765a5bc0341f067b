"""Linear scikit-learn models served by numpy with scikit-learn's own arithmetic.

Why: a linear model's answer is one matrix product (~2 us), yet serving it through an
onnxruntime session cost ~10 us more server CPU per one-row request (34.4 against 24.6 us, a
third of the request; docs/benchmarks/serving.md), and scikit-learn's input checks cost more
than the session. numpy evaluates the expression scikit-learn does,
`X @ coef_.T + intercept_`, on the same float64 rows, so labels
are scikit-learn's exactly (onnxruntime's float32 could flip a label near the boundary).
Probabilities follow the formula scikit-learn used on the sample (expit or softmax, which
depends on its version and the model) and must agree within PROBA_ATOL, or the model is left to
the other backends. Only the exact classes listed are taken: a subclass may predict otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Any

import numpy as np

from mlkube_serving.tensors import Tensor, array_from_json, array_json, datatype_of

LINEAR_CLASSIFIERS = frozenset(
    ("LogisticRegression", "LogisticRegressionCV", "LinearSVC", "Perceptron", "SGDClassifier",
     "RidgeClassifier", "RidgeClassifierCV", "PassiveAggressiveClassifier")
)  # fmt: skip
LINEAR_REGRESSORS = frozenset(
    ("LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "ElasticNetCV",
     "LassoLars", "Lars", "BayesianRidge", "ARDRegression", "HuberRegressor", "SGDRegressor",
     "TheilSenRegressor", "QuantileRegressor", "LinearSVR", "OrthogonalMatchingPursuit")
)  # fmt: skip
PROBA_KINDS = ("expit", "softmax")
# A float64 formula evaluated in another order than scikit-learn's differs by a few ulps.
PROBA_ATOL = 1e-12
REGRESSION_RTOL = 1e-12
NOT_FINITE = "Input X contains NaN or infinity."  # scikit-learn's message for the same input


def is_linear(estimator: Any) -> bool:
    """An exact scikit-learn linear model class (not a subclass) with fitted coefficients."""
    kind = type(estimator)
    return (
        (
            kind.__module__.startswith("sklearn.linear_model")
            or kind.__module__.startswith("sklearn.svm")
        )
        and (kind.__name__ in LINEAR_CLASSIFIERS or kind.__name__ in LINEAR_REGRESSORS)
        and hasattr(estimator, "coef_")
    )


class LinearBackend:
    """`X @ coef.T + intercept`, then scikit-learn's labels, probabilities or values."""

    def __init__(
        self,
        coef: np.ndarray[Any, Any],
        intercept: np.ndarray[Any, Any] | float,
        classes: np.ndarray[Any, Any] | None,
        proba: str | None,
    ) -> None:
        self.coef = coef
        self.intercept = intercept
        self.classes = classes
        self.proba = proba  # "expit", "softmax" or None (no predict_proba)
        self._coef_t = coef.T if coef.ndim == 2 else coef
        # A one-column score is raveled for classifiers only (LinearClassifierMixin does so).
        self._ravel = classes is not None and coef.ndim == 2 and coef.shape[0] == 1

    def scores(self, features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if not np.isfinite(features).all():
            raise ValueError(NOT_FINITE)
        scores: np.ndarray[Any, Any] = features @ self._coef_t + self.intercept
        if self._ravel:
            scores = scores.reshape(-1)
        return scores

    def labels(self, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        assert self.classes is not None
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes.take(indices, axis=0)

    def probabilities(self, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.proba == "expit":
            with np.errstate(over="ignore"):  # exp(709+) is inf and the probability 0, rightly
                prob: np.ndarray[Any, Any] = 1.0 / (1.0 + np.exp(-scores))
            if prob.ndim == 1:
                return np.stack([1 - prob, prob], axis=1)
            total = prob.sum(axis=1)
            empty = total == 0
            if empty.any():  # every class at zero: uniform, as scikit-learn answers
                prob[empty, :] = 1
                total[empty] = prob.shape[1]
            prob /= total.reshape(prob.shape[0], -1)
            return prob
        if self.proba == "softmax":
            wide: np.ndarray[Any, Any]
            wide = np.stack([-scores, scores], axis=1) if scores.ndim == 1 else scores.copy()
            wide -= wide.max(axis=1).reshape(-1, 1)
            np.exp(wide, out=wide)
            wide /= wide.sum(axis=1).reshape(-1, 1)
            return wide
        raise ValueError("this model has no predict_proba")

    def __call__(self, features: np.ndarray[Any, Any], names: list[str]) -> list[Tensor]:
        scores = self.scores(features)
        result = []
        for name in names:
            if name == "predict":
                array = scores if self.classes is None else self.labels(scores)
            else:
                array = self.probabilities(scores)
            result.append(Tensor(name, array, datatype_of(array)))
        return result

    def plain_labels(self) -> Callable[[np.ndarray[Any, Any]], list[Tensor]]:
        """`self(features, ["predict"])` with the output's datatype worked out once."""
        scores_of, classes = self.scores, self.classes
        if classes is None:
            datatype = datatype_of(np.zeros(0, dtype=np.result_type(self.coef, np.float64)))

            def values(features: np.ndarray[Any, Any]) -> list[Tensor]:
                return [Tensor("predict", scores_of(features), datatype)]

            return values
        datatype, labels_of = datatype_of(classes), self.labels
        coef_t, intercept = self._coef_t, self.intercept

        def labels(features: np.ndarray[Any, Any]) -> list[Tensor]:
            scores = features @ coef_t + intercept
            if scores.shape[0] == 1:  # one row: plain floats beat five numpy calls (~4 us)
                values = scores.ravel().tolist()
                if all(map(isfinite, values)):  # else the checked path says why (or answers)
                    if len(values) == 1:
                        first = 1 if values[0] > 0 else 0
                    else:
                        first = values.index(max(values))  # argmax: the first of equal tops
                    return [Tensor("predict", classes[first : first + 1], datatype)]
            return [Tensor("predict", labels_of(scores_of(features)), datatype)]

        return labels

    def export(self) -> dict[str, Any]:
        """JSON-able parameters for `from_export`."""
        intercept = self.intercept
        return {
            "coef": array_json(self.coef),
            # The product's rounding may follow the memory layout (BLAS transposes or not).
            "coefFortran": bool(self.coef.flags.f_contiguous and not self.coef.flags.c_contiguous),
            # A Python float (fit_intercept=False) stays one: numpy treats it as weakly typed.
            "intercept": intercept if isinstance(intercept, float) else array_json(intercept),
            "classes": array_json(self.classes),
            "proba": self.proba,
        }

    @classmethod
    def from_export(cls, meta: dict[str, Any]) -> LinearBackend:
        coef, raw = array_from_json(meta["coef"]), meta["intercept"]
        intercept = raw if isinstance(raw, float) else array_from_json(raw)
        assert coef is not None and intercept is not None  # export wrote both
        return cls(
            np.asfortranarray(coef) if meta["coefFortran"] else coef,
            intercept,
            array_from_json(meta["classes"]),
            meta["proba"],
        )


def linearize(estimator: Any, sample: np.ndarray[Any, Any]) -> tuple[LinearBackend | None, str]:
    """A LinearBackend that gives scikit-learn's answers on `sample`, or None and why not."""
    coef = np.asarray(estimator.coef_)  # its own array: the same layout, the same rounding
    raw = getattr(estimator, "intercept_", 0.0)
    intercept = float(raw) if isinstance(raw, (int, float)) else np.asarray(raw)
    raw_classes = getattr(estimator, "classes_", None)
    classes = None if raw_classes is None else np.asarray(raw_classes)
    if coef.dtype != np.float64 or (
        not isinstance(intercept, float) and intercept.dtype != np.float64
    ):  # float32 models round in float32 (scipy's expit differs by an ulp): not checked here
        return None, "its coefficients are not float64"
    if classes is not None and (classes.ndim != 1 or len(classes) < 2):
        return None, "it is not a single-label classifier"
    expected = np.asarray(estimator.predict(sample))
    has_proba = classes is not None and hasattr(estimator, "predict_proba")
    for proba in PROBA_KINDS if has_proba else (None,):
        backend = LinearBackend(coef, intercept, classes, proba)
        got = backend(sample, ["predict"])[0].data
        if got.shape != expected.shape or got.dtype != expected.dtype:
            return None, f"its predictions are {expected.dtype}{expected.shape}, not a plain array"
        if classes is not None and not np.array_equal(got, expected):
            return None, f"{int(np.sum(got != expected))} of {len(sample)} labels differ"
        if classes is None:
            if not np.allclose(got, expected, rtol=REGRESSION_RTOL, atol=0):
                return None, "its predictions are not X @ coef_.T + intercept_"
            return backend, "numpy (X @ coef_.T + intercept_, scikit-learn's arithmetic)"
        if proba is None:
            return backend, "numpy (scikit-learn's decision function and labels)"
        gap = float(np.max(np.abs(backend.probabilities(backend.scores(sample)) -
                                  estimator.predict_proba(sample))))  # fmt: skip
        if gap <= PROBA_ATOL:
            return backend, f"numpy (scikit-learn's decision function; {proba} probabilities)"
    return None, "its probabilities follow neither expit nor softmax of the decision function"
