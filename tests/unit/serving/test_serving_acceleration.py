"""ONNX acceleration of scikit-learn models: parity, tie-breaking, fallbacks, switch-off.

Linear models go to numpy instead: test_serving_linear.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlkube_serving import metrics
from mlkube_serving.acceleration import acceleration_enabled
from mlkube_serving.runtimes.sklearn import SklearnRuntime
from mlkube_serving.tensors import Tensor


def serve(estimator: Any, sample: np.ndarray[Any, Any] | None = None) -> SklearnRuntime:
    runtime = SklearnRuntime("in-memory", estimator=estimator, sample=sample)
    runtime.load()
    return runtime


def run(runtime: SklearnRuntime, X: np.ndarray[Any, Any], outputs: list[str]) -> list[Any]:
    return [t.data for t in runtime.predict([Tensor("input-0", X, "FP64")], outputs)]


def test_forest_votes_that_tie_break_like_sklearn() -> None:
    # Noisy labels and an even number of trees: many rows get exactly half of the votes.
    X, y = make_classification(n_samples=400, n_features=20, flip_y=0.3, random_state=1)
    forest = RandomForestClassifier(n_estimators=20, random_state=1).fit(X, y)
    runtime = serve(forest)
    assert runtime.active_runtime == "onnxruntime"
    probe = np.random.default_rng(5).normal(size=(2000, 20))
    ties = np.sum(forest.predict_proba(probe)[:, 0] == 0.5)
    assert ties > 20  # the probe really exercises ties
    labels, proba = run(runtime, probe, ["predict", "predict_proba"])
    assert np.array_equal(labels, forest.predict(probe))
    assert proba.dtype == np.float64
    assert np.max(np.abs(proba - forest.predict_proba(probe))) < 1e-5


def test_boosted_trees_match_within_tolerance() -> None:
    X, y = make_classification(n_samples=300, n_features=20, random_state=2)
    model = GradientBoostingClassifier(n_estimators=20, random_state=2).fit(X, y)
    runtime = serve(model)
    assert runtime.active_runtime == "onnxruntime"
    labels, proba = run(runtime, X, ["predict", "predict_proba"])
    assert np.array_equal(labels, model.predict(X))
    assert np.max(np.abs(proba - model.predict_proba(X))) < 1e-5


def test_string_labels_keep_their_type() -> None:
    X, y = make_classification(n_samples=200, n_features=20, random_state=3)
    labels = np.where(y == 1, "yes", "no")
    model = DecisionTreeClassifier(max_depth=4, random_state=3).fit(X, labels)
    runtime = serve(model)
    assert runtime.active_runtime == "onnxruntime"
    (served,) = run(runtime, X[:10], ["predict"])
    assert served.tolist() == model.predict(X[:10]).tolist()


def test_regressor_output_is_flat_like_sklearn() -> None:
    X, y = make_regression(n_samples=200, n_features=20, random_state=4)
    model = DecisionTreeRegressor(max_depth=5, random_state=4).fit(X, y)
    runtime = serve(model)
    assert runtime.active_runtime == "onnxruntime"
    (values,) = run(runtime, X[:5], ["predict"])
    assert values.shape == (5,)
    assert np.allclose(values, model.predict(X[:5]), rtol=1e-4, atol=1e-3)


def test_switched_off_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKUBE_ONNX_ACCELERATION", "0")
    X, y = make_classification(n_samples=100, n_features=20, random_state=0)
    runtime = serve(LogisticRegression().fit(X, y))
    assert runtime.active_runtime == "sklearn"
    assert "turned off" in runtime.runtime_note
    assert acceleration_enabled({"MLKUBE_ONNX_ACCELERATION": "false"}) is False
    assert acceleration_enabled({}) is True


def test_parity_failure_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKUBE_ONNX_PARITY_ATOL", "0")  # float32 can never match exactly
    X, y = make_classification(n_samples=100, n_features=20, random_state=0)
    runtime = serve(RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y))
    assert runtime.active_runtime == "sklearn"
    assert "probabilities differ" in runtime.runtime_note


class Unconvertible(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier skl2onnx has no converter for."""

    def fit(self, X: Any, y: Any) -> Unconvertible:
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: Any) -> Any:
        return np.full(len(X), self.classes_[0])


def test_unconvertible_model_falls_back_and_still_serves() -> None:
    X, y = make_classification(n_samples=50, n_features=20, random_state=0)
    runtime = serve(Unconvertible().fit(X, y))
    assert runtime.active_runtime == "sklearn"
    assert "could not convert" in runtime.runtime_note
    (labels,) = run(runtime, X[:3], ["predict"])
    assert labels.tolist() == [y.min()] * 3


def test_active_runtime_is_a_metric() -> None:
    metrics.record_model("accel-metric", "sklearn", "onnxruntime", 0.25)
    text = metrics.render().decode()
    labels = 'framework="sklearn",model="accel-metric",runtime="onnxruntime"'
    assert f"mlkube_model_runtime_info{{{labels}}} 1.0" in text
    assert 'mlkube_model_load_seconds{model="accel-metric"} 0.25' in text


def test_a_bad_parity_tolerance_keeps_the_default() -> None:
    from mlkube_serving.acceleration import DEFAULT_PARITY_ATOL, parity_tolerance

    assert parity_tolerance(None) == DEFAULT_PARITY_ATOL
    assert parity_tolerance("1e-3") == 1e-3
    assert parity_tolerance("lots") == DEFAULT_PARITY_ATOL
    assert parity_tolerance("-1") == DEFAULT_PARITY_ATOL
    assert parity_tolerance("nan") == DEFAULT_PARITY_ATOL
