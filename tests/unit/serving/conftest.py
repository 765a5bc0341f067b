"""Serving unit fixtures: tiny models, MLflow, ONNX, scoring-script and Seldon dirs on disk."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.serving import build_forest, build_logistic, build_mlflow, make_data


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return make_data()


@pytest.fixture(scope="session")
def forest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_forest(tmp_path_factory.mktemp("forest"))


@pytest.fixture(scope="session")
def logistic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_logistic(tmp_path_factory.mktemp("logistic"))


@pytest.fixture(scope="session")
def mlflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mlflow(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, logistic_dir: Path) -> Path:
    import joblib
    from skl2onnx import to_onnx

    estimator = joblib.load(logistic_dir / "model.joblib")
    model = to_onnx(estimator, np.zeros((1, 20), dtype=np.float32), options={"zipmap": False})
    directory = tmp_path_factory.mktemp("onnx")
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    return directory


@pytest.fixture(scope="session")
def script_dir(tmp_path_factory: pytest.TempPathFactory, logistic_dir: Path) -> Path:
    """An Azure ML scoring script that loads the logistic model from AZUREML_MODEL_DIR."""
    directory = tmp_path_factory.mktemp("script")
    (directory / "model.joblib").write_bytes((logistic_dir / "model.joblib").read_bytes())
    (directory / "score.py").write_text(
        textwrap.dedent(
            """
            import json, os
            import joblib

            model = None
            seen_dir = None

            def init():
                global model, seen_dir
                seen_dir = os.environ["AZUREML_MODEL_DIR"]
                model = joblib.load(os.path.join(seen_dir, "model.joblib"))

            def run(raw_data):
                data = json.loads(raw_data)["data"]
                return {"result": model.predict(data).tolist(), "dir": seen_dir}
            """
        )
    )
    return directory


@pytest.fixture(scope="session")
def seldon_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Seldon-style class that sums each row and reports the feature names it got."""
    directory = tmp_path_factory.mktemp("seldon")
    (directory / "Summer.py").write_text(
        textwrap.dedent(
            """
            import time
            import numpy as np

            class Summer:
                class_names = ["total"]

                def __init__(self):
                    self.loaded = False
                    self.last_names = None

                def load(self):
                    self.loaded = True

                def predict(self, X, features_names):
                    self.last_names = list(features_names)
                    X = np.asarray(X, dtype=float)
                    if X.size and X.flat[0] == -1:
                        time.sleep(0.5)
                    return X.reshape(len(X), -1).sum(axis=1, keepdims=True)
            """
        )
    )
    return directory
