"""KServe V1, Seldon v1 and Azure ML /score through the ASGI app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkube_serving.app import ServingApp
from support.serving_asgi import call, make_app

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def app(logistic_dir: Path) -> ServingApp:
    return make_app(logistic_dir, name="credit")


def expected(app: ServingApp, rows: np.ndarray[Any, Any], proba: bool = False) -> Any:
    estimator = app.dataplane.get("credit").runtime.estimator  # type: ignore[attr-defined]
    return estimator.predict_proba(rows) if proba else estimator.predict(rows)


def test_v1_status_and_list(app: ServingApp) -> None:
    assert call(app, "GET", "/v1/models/credit").json() == {"name": "credit", "ready": True}
    assert call(app, "GET", "/v1/models").json() == {"models": ["credit"]}
    assert call(app, "GET", "/v1/models/other").status == 404


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_v1_predict_rows(app: ServingApp, data: Data, key: str) -> None:
    X, _ = data
    answer = call(app, "POST", "/v1/models/credit:predict", {key: X[:4].tolist()})
    assert answer.status == 200, answer.body
    assert answer.json() == {"predictions": expected(app, X[:4]).tolist()}


def test_v1_records_are_ordered_by_feature_names(mlflow_dir: Path, data: Data) -> None:
    X, _ = data
    app = make_app(mlflow_dir, name="credit")
    names = [f"f{i}" for i in range(20)]
    records = [dict(reversed(list(zip(names, row, strict=True)))) for row in X[:3].tolist()]
    answer = call(app, "POST", "/v1/models/credit:predict", {"instances": records})
    assert answer.status == 200, answer.body
    estimator = app.dataplane.get("credit").runtime._inner.estimator  # type: ignore[attr-defined]
    assert answer.json()["predictions"] == estimator.predict(X[:3]).tolist()


def test_v1_columnar_inputs(app: ServingApp, data: Data) -> None:
    X, _ = data
    columns = {f"c{i}": X[:2, i].tolist() for i in range(20)}
    answer = call(app, "POST", "/v1/models/credit:predict", {"inputs": columns})
    assert answer.json() == {"predictions": expected(app, X[:2]).tolist()}


@pytest.mark.parametrize(
    "body",
    [{}, {"instances": []}, {"instances": [[1, 2], [3]]}, {"instances": "x"}, [1, 2]],
)
def test_v1_bad_bodies_are_400(app: ServingApp, body: Any) -> None:
    answer = call(app, "POST", "/v1/models/credit:predict", body)
    assert answer.status == 400
    assert answer.json()["error"]


def test_seldon_ndarray_returns_probabilities_and_echoes_meta(app: ServingApp, data: Data) -> None:
    X, _ = data
    body = {"data": {"ndarray": X[:2].tolist()}, "meta": {"puid": "abc", "tags": {"t": 1}}}
    answer = call(app, "POST", "/api/v1.0/predictions", body)
    assert answer.status == 200, answer.body
    result = answer.json()
    assert result["data"]["names"] == ["t:0", "t:1"]
    assert np.allclose(result["data"]["ndarray"], expected(app, X[:2], proba=True))
    assert result["meta"]["puid"] == "abc"
    assert result["meta"]["tags"] == {"t": 1}
    assert result["meta"]["requestPath"] == {"credit": "numpy"}  # a linear model


def test_seldon_tensor_in_tensor_out(app: ServingApp, data: Data) -> None:
    X, _ = data
    body = {"data": {"tensor": {"shape": [2, 20], "values": X[:2].ravel().tolist()}}}
    result = call(app, "POST", "/predict", body).json()
    assert result["data"]["tensor"]["shape"] == [2, 2]
    assert np.allclose(result["data"]["tensor"]["values"], expected(app, X[:2], True).ravel())


def test_seldon_names_reorder_columns(mlflow_dir: Path, data: Data) -> None:
    X, _ = data
    app = make_app(mlflow_dir, name="credit")
    names = [f"f{i}" for i in range(20)]
    body = {"data": {"names": names[::-1], "ndarray": X[:2, ::-1].tolist()}}
    result = call(app, "POST", "/api/v1.0/predictions", body).json()
    estimator = app.dataplane.get("credit").runtime._inner.estimator  # type: ignore[attr-defined]
    assert np.allclose(result["data"]["ndarray"], estimator.predict_proba(X[:2]))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data": []},
        {"data": {"strData": "x"}},
        {"data": {"tensor": {"shape": [3, 20], "values": [1.0]}}},
        {"data": {"tensor": {"shape": "2", "values": [1.0]}}},
        {"data": {"names": [1], "ndarray": [[1.0]]}},
    ],
)
def test_seldon_bad_bodies_are_400(app: ServingApp, body: Any) -> None:
    answer = call(app, "POST", "/api/v1.0/predictions", body)
    assert answer.status == 400
    assert answer.json()["error"]


def test_seldon_class_gets_names_and_class_names(seldon_dir: Path) -> None:
    app = make_app(seldon_dir, name="summer")
    body = {"data": {"names": ["a", "b"], "ndarray": [[1, 2], [3, 4]]}}
    result = call(app, "POST", "/api/v1.0/predictions", body).json()
    assert result["data"] == {"names": ["total"], "ndarray": [[3.0], [7.0]]}
    instance = app.dataplane.get("summer").runtime._instance  # type: ignore[attr-defined]
    assert instance.loaded is True
    assert instance.last_names == ["a", "b"]


@pytest.mark.parametrize("shape", ["data", "input_data"])
def test_azureml_score_for_library_models(app: ServingApp, data: Data, shape: str) -> None:
    X, _ = data
    body: dict[str, Any] = {"data": X[:3].tolist()}
    if shape == "input_data":
        body = {"input_data": {"columns": [f"x{i}" for i in range(20)], "data": X[:3].tolist()}}
    answer = call(app, "POST", "/score", body)
    assert answer.status == 200, answer.body
    assert answer.json() == expected(app, X[:3]).tolist()


def test_azureml_scoring_script_gets_raw_body_and_model_dir(script_dir: Path, data: Data) -> None:
    X, _ = data
    app = make_app(script_dir, name="scored")
    answer = call(app, "POST", "/score", {"data": X[:2].tolist()})
    assert answer.status == 200, answer.body
    result = answer.json()
    assert result["dir"] == str(script_dir)
    assert len(result["result"]) == 2


def test_scoring_script_through_v2(script_dir: Path, data: Data) -> None:
    X, _ = data
    app = make_app(script_dir, name="scored")
    body = {"inputs": [{"name": "x", "shape": [2, 20], "datatype": "FP64", "data": X[:2].tolist()}]}
    answer = call(app, "POST", "/v2/models/scored/infer", body)
    assert answer.status == 200, answer.body
    output = answer.json()["outputs"][0]
    assert output["datatype"] == "BYTES"  # a dict result travels as one JSON string
    assert '"result"' in output["data"][0]


def test_user_code_runs_under_the_request_timeout(seldon_dir: Path) -> None:
    app = make_app(seldon_dir, name="summer", request_timeout=0.1)
    body = {"data": {"ndarray": [[-1, 2]]}}  # the class sleeps 0.5 s on -1
    answer = call(app, "POST", "/api/v1.0/predictions", body)
    assert answer.status == 504
    assert "0.1" in answer.json()["error"]
