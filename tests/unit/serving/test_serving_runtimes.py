"""Runtimes: framework detection, loading, thread limits, metadata and input handling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlkube_serving.errors import InvalidRequest, ModelLoadError
from mlkube_serving.runtimes import create_runtime, detect_framework
from mlkube_serving.runtimes.sklearn import SklearnRuntime, limit_threads
from mlkube_serving.tensors import Tensor, to_feature_matrix
from support.serving import write_sklearn

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def rows(X: np.ndarray[Any, Any]) -> list[Tensor]:
    return [Tensor("input-0", X, "FP64")]


def test_detect_framework(
    forest_dir: Path, onnx_dir: Path, mlflow_dir: Path, script_dir: Path, seldon_dir: Path
) -> None:
    assert detect_framework(str(forest_dir)) == "sklearn"
    assert detect_framework(str(forest_dir / "model.joblib")) == "sklearn"
    assert detect_framework(str(onnx_dir)) == "onnx"
    assert detect_framework(str(mlflow_dir)) == "mlflow"
    assert detect_framework(str(script_dir)) == "scoring_script"
    assert detect_framework(str(seldon_dir)) == "seldon"


def test_unknown_framework_and_missing_path_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="unknown framework 'tensorflow'"):
        create_runtime(str(tmp_path), "tensorflow")
    with pytest.raises(ModelLoadError, match="does not exist"):
        create_runtime(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="no model files"):
        create_runtime(str(tmp_path))


def test_custom_framework_picks_script_or_class(script_dir: Path, seldon_dir: Path) -> None:
    assert create_runtime(str(script_dir), "custom").framework == "scoring_script"
    assert create_runtime(str(seldon_dir), "custom").framework == "seldon"


def test_limit_threads_reaches_nested_estimators() -> None:
    pipeline = make_pipeline(StandardScaler(), RandomForestClassifier(n_jobs=-1))
    limit_threads(pipeline)
    assert pipeline.get_params()["randomforestclassifier__n_jobs"] == 1


def test_sklearn_runtime_loads_one_thread_and_describes_itself(forest_dir: Path) -> None:
    runtime = create_runtime(str(forest_dir))
    runtime.load()
    assert isinstance(runtime, SklearnRuntime)
    assert runtime.estimator.n_jobs == 1  # the fixture saved n_jobs=2
    assert runtime.n_features == 20
    assert [o.name for o in runtime.outputs] == ["predict", "predict_proba"]


def test_sklearn_runtime_rejects_wrong_width_and_text(forest_dir: Path) -> None:
    runtime = create_runtime(str(forest_dir))
    runtime.load()
    with pytest.raises(InvalidRequest, match="expects 20 features per row, got 3"):
        runtime.predict(rows(np.zeros((2, 3))), None)
    text = np.array([["a"] * 20], dtype=object)
    with pytest.raises(InvalidRequest, match="numeric"):
        runtime.predict([Tensor("input-0", text, "BYTES")], None)
    with pytest.raises(InvalidRequest, match="no rows"):
        runtime.predict(rows(np.zeros((0, 20))), None)


def test_one_row_as_a_flat_vector(forest_dir: Path, data: Data) -> None:
    X, _ = data
    runtime = create_runtime(str(forest_dir))
    runtime.load()
    flat = runtime.predict([Tensor("input-0", X[0], "FP64")], None)[0].data
    assert flat.shape == (1,)


def test_named_columns_follow_feature_names() -> None:
    columns = [Tensor("b", np.array([2.0, 4.0]), "FP64"), Tensor("a", np.array([1.0, 3.0]), "FP64")]
    matrix = to_feature_matrix(columns, 2, ["a", "b"])
    assert matrix.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(InvalidRequest, match="rows"):
        to_feature_matrix([columns[0], Tensor("a", np.array([1.0]), "FP64")], 2, None)


def test_onnx_runtime_caches_names_and_serves_all_outputs(onnx_dir: Path, data: Data) -> None:
    X, _ = data
    runtime = create_runtime(str(onnx_dir))
    runtime.load()
    assert runtime.active_runtime == "onnxruntime"
    assert [i.name for i in runtime.inputs] == ["X"]
    assert runtime.n_features == 20
    outputs = runtime.predict(rows(X[:3]), None)  # FP64 in, cast to the model's float
    assert [o.name for o in outputs] == ["label", "probabilities"]
    assert outputs[1].data.shape == (3, 2)
    only = runtime.predict(rows(X[:3]), ["label"])
    assert [o.name for o in only] == ["label"]
    with pytest.raises(InvalidRequest):
        runtime.predict(rows(X[:3, :5]), None)


def test_mlflow_runtime_uses_signature_names_and_input_example(
    mlflow_dir: Path, data: Data
) -> None:
    X, _ = data
    runtime = create_runtime(str(mlflow_dir))
    runtime.load()
    assert runtime.framework == "mlflow"
    assert runtime.feature_names == [f"f{i}" for i in range(20)]
    assert runtime.active_runtime == "numpy"  # the flavor's logistic regression
    assert "5 sample rows" in runtime.runtime_note  # parity ran on the saved input example
    assert runtime.predict(rows(X[:2]), None)[0].data.shape == (2,)


def test_mlflow_without_a_served_flavor_fails(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  pytorch:\n    model_data: data\n")
    runtime = create_runtime(str(tmp_path))
    with pytest.raises(ModelLoadError, match="pytorch"):
        runtime.load()


def test_scoring_script_without_run_fails(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\n")
    with pytest.raises(ModelLoadError, match="run"):
        create_runtime(str(tmp_path)).load()


def test_scoring_script_init_error_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(
        "def init():\n    raise RuntimeError('boom')\ndef run(d):\n    return d\n"
    )
    with pytest.raises(ModelLoadError, match="boom"):
        create_runtime(str(tmp_path)).load()


def test_seldon_entrypoint_env_picks_the_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "impl.py").write_text(
        "class Doubler:\n"
        "    def predict(self, X, names):\n"
        "        return [[2 * v for v in r] for r in X.tolist()]\n"
    )
    monkeypatch.setenv("MLKUBE_ENTRYPOINT", "impl.Doubler")
    runtime = create_runtime(str(tmp_path), "seldon")
    runtime.load()
    out = runtime.predict([Tensor("x", np.array([[1, 2]]), "INT64")], None)
    assert out[0].data.tolist() == [[2, 4]]


def test_pickle_suffixes_load(tmp_path: Path, data: Data) -> None:
    X, y = data
    write_sklearn(tmp_path, RandomForestClassifier(3, random_state=0).fit(X, y), "clf.pkl")
    runtime = create_runtime(str(tmp_path))
    runtime.load()
    assert runtime.predict(rows(X[:1]), None)[0].data.shape == (1,)


def test_mlflow_onnx_flavor(tmp_path: Path, onnx_dir: Path, data: Data) -> None:
    X, _ = data
    (tmp_path / "model.onnx").write_bytes((onnx_dir / "model.onnx").read_bytes())
    (tmp_path / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
    runtime = create_runtime(str(tmp_path))
    runtime.load()
    assert runtime.active_runtime == "onnxruntime"
    assert runtime.predict(rows(X[:2]), ["label"])[0].data.shape == (2,)
