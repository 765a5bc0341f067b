"""Linear scikit-learn models served by numpy: scikit-learn's answers bit for bit, every path."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import linear_model, svm
from sklearn.datasets import make_classification, make_regression

from mlkube_serving.errors import InvalidRequest
from mlkube_serving.linear import LinearBackend, is_linear
from mlkube_serving.runtimes.sklearn import SklearnRuntime
from mlkube_serving.tensors import Tensor

WIDTH = 8
Xb, yb = make_classification(n_samples=300, n_features=WIDTH, random_state=1)
Xm, ym = make_classification(
    n_samples=300, n_features=WIDTH, n_informative=5, n_classes=4, random_state=2
)
Xr, yr = make_regression(n_samples=300, n_features=WIDTH, random_state=3)

MODELS: dict[str, Callable[[], Any]] = {
    "logistic-binary": lambda: linear_model.LogisticRegression(max_iter=500).fit(Xb, yb),
    "logistic-4-classes": lambda: linear_model.LogisticRegression(max_iter=500).fit(Xm, ym),
    "logistic-text-labels": lambda: linear_model.LogisticRegression(max_iter=500).fit(
        Xb, np.where(yb == 1, "yes", "no")
    ),
    "linear-svc-4-classes": lambda: svm.LinearSVC().fit(Xm, ym),
    "sgd-log-loss": lambda: linear_model.SGDClassifier(loss="log_loss", random_state=0).fit(Xm, ym),
    "ridge-classifier": lambda: linear_model.RidgeClassifier().fit(Xb, yb),
    "linear-regression": lambda: linear_model.LinearRegression().fit(Xr, yr),
    "two-targets": lambda: linear_model.LinearRegression().fit(Xr, np.c_[yr, -yr]),
    "lasso": lambda: linear_model.Lasso().fit(Xr, yr),
    "no-intercept": lambda: linear_model.Ridge(fit_intercept=False).fit(Xr, yr),
}
FITTED = {name: make() for name, make in MODELS.items()}


def serve(estimator: Any) -> SklearnRuntime:
    runtime = SklearnRuntime("in-memory", estimator=estimator)
    runtime.load()
    return runtime


def outputs_of(estimator: Any) -> list[str]:
    return ["predict", "predict_proba"] if hasattr(estimator, "predict_proba") else ["predict"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_path_gives_sklearns_answers(name: str) -> None:
    estimator = FITTED[name]
    runtime = serve(estimator)
    assert runtime.active_runtime == "numpy", runtime.runtime_note
    probe = np.random.default_rng(7).normal(scale=3.0, size=(400, WIDTH))
    expected = estimator.predict(probe)
    got = runtime.predict([Tensor("x", probe, "FP64")], outputs_of(estimator))
    assert got[0].data.dtype == expected.dtype and got[0].data.shape == expected.shape
    assert np.array_equal(got[0].data, expected)  # bit for bit, regressors included
    if len(got) > 1:
        assert got[1].data.dtype == np.float64
        assert np.max(np.abs(got[1].data - estimator.predict_proba(probe))) <= 1e-12
    assert runtime.plain_predict is not None
    for row in probe[:50]:  # the one-row shortcut
        (one,) = runtime.plain_predict(row.reshape(1, -1))
        assert np.array_equal(one.data, estimator.predict(row.reshape(1, -1)))
        assert one.datatype == got[0].datatype


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["logistic-binary", "logistic-4-classes", "linear-svc-4-classes"]),
    row=arrays(np.float64, (1, WIDTH), elements=st.floats(-1e6, 1e6, allow_nan=False)),
)
def test_one_row_labels_equal_sklearns_anywhere(name: str, row: np.ndarray[Any, Any]) -> None:
    # Rows on and near the decision boundary included (zeros, repeats, huge values).
    runtime = serve_cached(name)
    assert runtime.plain_predict is not None
    (one,) = runtime.plain_predict(row)
    assert np.array_equal(one.data, FITTED[name].predict(row))


_served: dict[str, SklearnRuntime] = {}


def serve_cached(name: str) -> SklearnRuntime:
    if name not in _served:
        _served[name] = serve(FITTED[name])
    return _served[name]


def test_a_score_exactly_on_the_boundary_is_the_first_class() -> None:
    backend = LinearBackend(np.array([[1.0, -1.0]]), np.array([0.0]), np.array(["a", "b"]), None)
    tie = np.array([[2.5, 2.5]])
    assert backend(tie, ["predict"])[0].data.tolist() == ["a"]  # "b" only for a score > 0
    assert backend.plain_labels()(tie)[0].data.tolist() == ["a"]
    three = LinearBackend(np.eye(3), np.zeros(3), np.array([5, 6, 7]), None)
    equal_tops = np.array([[1.0, 3.0, 3.0]])
    assert three.plain_labels()(equal_tops)[0].data.tolist() == [6]  # argmax: the first top


def test_not_finite_rows_are_refused_like_sklearn_does() -> None:
    runtime = serve_cached("logistic-binary")
    row = Xb[:1].copy()
    row[0, 2] = np.nan
    with pytest.raises(InvalidRequest, match="NaN or infinity"):
        runtime.predict([Tensor("x", row, "FP64")], None)
    assert runtime.plain_predict is not None
    with pytest.raises(ValueError):  # the shortcut hands it back to the general path
        runtime.plain_predict(row)
    with pytest.raises(ValueError):
        FITTED["logistic-binary"].predict(row)


def test_overflowing_scores_still_answer_as_sklearn() -> None:
    estimator = FITTED["logistic-4-classes"]
    runtime = serve_cached("logistic-4-classes")
    huge = np.full((1, WIDTH), 1e305)
    assert runtime.plain_predict is not None
    with np.errstate(over="ignore", invalid="ignore"):
        (one,) = runtime.plain_predict(huge)
        assert np.array_equal(one.data, estimator.predict(huge))


def test_a_subclass_is_not_taken_for_linear() -> None:
    class Shifted(linear_model.LogisticRegression):  # type: ignore[misc]
        def predict(self, X: Any) -> Any:
            return super().predict(X) + 1

    shifted = Shifted(max_iter=500).fit(Xb, yb)
    assert not is_linear(shifted)
    runtime = serve(shifted)
    assert runtime.active_runtime != "numpy"
    (labels,) = runtime.predict([Tensor("x", Xb[:20], "FP64")], None)
    assert np.array_equal(labels.data, shifted.predict(Xb[:20]))


def test_probabilities_of_another_formula_are_declined_with_the_reason() -> None:
    huber = linear_model.SGDClassifier(loss="modified_huber", random_state=0).fit(Xb, yb)
    runtime = serve(huber)
    assert runtime.active_runtime != "numpy"
    assert "numpy declined it (its probabilities follow neither" in runtime.runtime_note
    (proba,) = runtime.predict([Tensor("x", Xb[:20], "FP64")], ["predict_proba"])
    assert np.max(np.abs(proba.data - huber.predict_proba(Xb[:20]))) < 1e-4


def test_switched_off_keeps_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKUBE_ONNX_ACCELERATION", "0")
    assert serve(FITTED["logistic-binary"]).active_runtime == "sklearn"


@pytest.mark.parametrize("name", ["logistic-4-classes", "logistic-text-labels", "two-targets"])
def test_exported_parameters_serve_the_same_without_sklearn(name: str) -> None:
    # A batch scorer's workers build the runtime from this export and never unpickle the model.
    runtime = serve_cached(name)
    exported = runtime.export_accelerated()
    assert exported is not None
    onnx_bytes, meta = exported
    assert onnx_bytes == b"" and meta["backend"] == "linear"
    rebuilt = SklearnRuntime.from_accelerated("in-memory", b"", json.loads(json.dumps(meta)))
    assert rebuilt.active_runtime == "numpy"
    assert [t.name for t in rebuilt.outputs] == [t.name for t in runtime.outputs]
    probe = np.random.default_rng(3).normal(size=(64, WIDTH))
    wanted = outputs_of(FITTED[name])
    for left, right in zip(
        rebuilt.predict([Tensor("x", probe, "FP64")], wanted),
        runtime.predict([Tensor("x", probe, "FP64")], wanted),
        strict=True,
    ):
        assert left.datatype == right.datatype
        assert np.array_equal(left.data, right.data)


def test_fortran_ordered_coefficients_keep_their_layout_through_the_export() -> None:
    coef = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4) / 7)
    backend = LinearBackend(coef, np.zeros(3), np.array([0, 1, 2]), None)
    again = LinearBackend.from_export(json.loads(json.dumps(backend.export())))
    assert again.coef.flags.f_contiguous and not again.coef.flags.c_contiguous
    assert np.array_equal(again.coef, coef)


def test_float32_models_are_left_to_the_other_backends() -> None:
    # scikit-learn keeps their arithmetic in float32 and takes scipy's expit: not reproduced.
    X32 = Xb.astype(np.float32)
    model = linear_model.LogisticRegression(max_iter=500).fit(X32, yb)
    assert model.coef_.dtype == np.float32
    runtime = serve(model)
    assert runtime.active_runtime != "numpy"
    assert "numpy declined it (its coefficients are not float64)" in runtime.runtime_note


def test_a_python_float_intercept_stays_one_through_the_export() -> None:
    model = FITTED["no-intercept"]
    assert isinstance(model.intercept_, float)
    exported = serve_cached("no-intercept").export_accelerated()
    assert exported is not None
    again = LinearBackend.from_export(json.loads(json.dumps(exported[1]["linear"])))
    assert isinstance(again.intercept, float)
    rows = Xr[:16].astype(np.float32)  # float32 rows: the product is float64 either way
    (values,) = again(rows, ["predict"])
    assert values.data.dtype == model.predict(rows).dtype
    assert np.array_equal(values.data, model.predict(rows))
