"""`endpoint invoke` posts each body to the route its protocol is served on (issue 9 A2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkube.cli.endpoint_invoke import (
    detect_protocol,
    one_model_name,
    read_request,
    request_path,
    target_models,
)
from mlkube.cli.errors import CliError

REPO = Path(__file__).resolve().parents[3]
SPEC = {
    "deployments": [
        {"name": "blue", "model": "credit-risk-v3"},
        {"name": "green", "model": "credit-risk-v4"},
        {"name": "shadow", "model": "fraud-v1"},
    ],
    "traffic": {"blue": 70, "green": 30, "shadow": 0},
}


def test_the_sample_request_make_dev_prints_is_a_v2_body() -> None:
    sample = json.loads((REPO / "examples/models/credit-risk/3/sample-request.json").read_text())
    assert detect_protocol(sample) == "v2"
    assert request_path("v2", "credit-risk") == "/v2/models/credit-risk/infer"


@pytest.mark.parametrize(
    ("body", "protocol", "path"),
    [
        ({"inputs": [{"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
         "v2", "/v2/models/m/infer"),
        ({"instances": [[1.0, 2.0]]}, "v1", "/v1/models/m:predict"),
        ({"inputs": [[1.0, 2.0]]}, "v1", "/v1/models/m:predict"),  # V1 row inputs
        ({"inputs": {"a": [1.0]}}, "v1", "/v1/models/m:predict"),  # TF columnar
        ({"data": {"ndarray": [[1.0, 2.0]]}}, "seldon", "/api/v1.0/predictions"),
        ({"data": [[1.0, 2.0]]}, "azureml", "/score"),
        ({"input_data": {"columns": ["a"], "data": [[1.0]]}}, "azureml", "/score"),
    ],
)  # fmt: skip
def test_route_follows_the_payload(body: object, protocol: str, path: str) -> None:
    assert detect_protocol(body) == protocol
    assert request_path(protocol, "m") == path


def test_model_names_are_quoted_into_the_path() -> None:
    assert request_path("v2", "a/b") == "/v2/models/a%2Fb/infer"


def test_unknown_bodies_say_what_is_expected() -> None:
    with pytest.raises(CliError, match=r"'inputs' \(V2\).*--protocol"):
        detect_protocol({"rows": []})
    with pytest.raises(CliError, match="not a JSON object"):
        detect_protocol([1, 2])


def test_live_deployments_decide_the_model_unless_one_is_named() -> None:
    assert target_models(SPEC, None) == {"blue": "credit-risk-v3", "green": "credit-risk-v4"}
    assert target_models(SPEC, "shadow") == {"shadow": "fraud-v1"}
    with pytest.raises(CliError, match=r"no deployment 'red'.*blue, green, shadow"):
        target_models(SPEC, "red")


def test_deployments_serving_different_models_need_deployment() -> None:
    assert one_model_name({"blue": "credit-risk", "green": "credit-risk"}) == "credit-risk"
    with pytest.raises(CliError, match="pass --deployment"):
        one_model_name({"blue": "credit-risk", "green": "fraud"})


def test_a_directory_as_request_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="is a directory"):
        read_request(str(tmp_path))
    with pytest.raises(CliError, match="does not exist"):
        read_request(str(tmp_path / "missing.json"))
