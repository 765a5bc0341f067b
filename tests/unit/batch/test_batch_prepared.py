"""The score step converts a model to ONNX in its parent only when the workers' runtime would
be sklearn: the same choice as online serving's create_runtime, so batch and online predictions
of one Model come from the same runtime."""

from __future__ import annotations

from pathlib import Path

from mlkube_serving.batch.prepared import is_sklearn


def test_custom_with_a_pickle_and_a_class_is_not_converted(tmp_path: Path) -> None:
    # `custom` means a scoring script or a Seldon class, even next to a pickled model.
    (tmp_path / "model.pkl").write_bytes(b"not read")
    (tmp_path / "MyModel.py").write_text("class MyModel: ...\n")
    assert not is_sklearn(str(tmp_path), "custom")
    assert is_sklearn(str(tmp_path), "sklearn")


def test_detected_and_unusable(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"not read")
    assert is_sklearn(str(tmp_path), None)
    assert not is_sklearn(str(tmp_path / "missing"), None)  # workers report it themselves


def test_a_linear_model_is_shared_as_parameters_and_a_forest_as_onnx(tmp_path: Path) -> None:
    import joblib
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlkube_serving.batch.prepared import load, prepare
    from mlkube_serving.tensors import Tensor

    X, y = make_classification(n_samples=200, n_features=6, random_state=0)
    for name, estimator, runtime, files in (
        ("linear", LogisticRegression(max_iter=300).fit(X, y), "numpy", ["model.json"]),
        ("forest", RandomForestClassifier(5, random_state=0).fit(X, y), "onnxruntime",
         ["model.json", "model.onnx"]),
    ):  # fmt: skip
        model, scratch = tmp_path / name / "model", tmp_path / name / "scratch"
        model.mkdir(parents=True)
        scratch.mkdir()
        joblib.dump(estimator, model / "model.joblib")
        assert prepare(str(model), None, None, str(scratch)) == str(scratch)
        assert sorted(p.name for p in scratch.iterdir()) == files
        served = load(str(model), str(scratch))
        assert served.active_runtime == runtime
        (labels,) = served.predict([Tensor("x", X, "FP64")], None)
        assert np.array_equal(labels.data, estimator.predict(X))
