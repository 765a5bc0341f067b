"""The Model kind: identity rules, patterns, printer columns and the Python-side checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from mlkube.api.crdgen import build_crd, openapi_schema
from mlkube.api.model import DATATYPES, FRAMEWORKS, MODEL, ModelSpec, ModelStatus

DIGEST = "sha256:" + "ab" * 32


def _node(root: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    node = root
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _rules(root: Mapping[str, Any], path: str) -> dict[str, str]:
    return {
        r["rule"]: r.get("message", "")
        for r in _node(root, path).get("x-kubernetes-validations", [])
    }


@pytest.fixture(scope="module")
def root() -> dict[str, Any]:
    return openapi_schema(build_crd(MODEL))


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "modelName": "credit-risk",
        "version": "3",
        "framework": "sklearn",
        "artifact": {"uri": "s3://models/credit-risk/3/", "digest": DIGEST},
    }
    spec.update(overrides)
    return spec


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("spec.modelName", "spec.modelName is immutable"),
        (
            "spec.version",
            "spec.version is immutable: register a new Model object for a new version",
        ),
        ("spec.framework", "spec.framework is immutable"),
        ("spec.artifact", "spec.artifact is immutable"),
        ("spec.baseline", "spec.baseline is immutable once set"),
    ],
)
def test_identity_fields_are_immutable(root: dict[str, Any], field: str, message: str) -> None:
    rules = _rules(root, field)
    assert "self == oldSelf" in rules
    assert rules["self == oldSelf"].startswith(message)


def test_properties_are_add_only(root: dict[str, Any]) -> None:
    rules = _rules(root, "spec.properties")
    assert rules["oldSelf.all(k, k in self && self[k] == oldSelf[k])"].startswith(
        "spec.properties is add-only"
    )
    spec_rules = _rules(root, "spec")
    removal = [r for r in spec_rules if "oldSelf.properties" in r]
    assert removal and "has(self.properties)" in removal[0]
    assert _node(root, "spec.properties")["maxProperties"] == 64


def test_baseline_cannot_be_removed_once_set(root: dict[str, Any]) -> None:
    rules = _rules(root, "spec")
    assert rules["!has(oldSelf.baseline) || has(self.baseline)"] == (
        "spec.baseline cannot be removed once set"
    )


def test_enums_and_patterns(root: dict[str, Any]) -> None:
    assert _node(root, "spec.framework")["enum"] == ["sklearn", "onnx", "mlflow", "custom"]
    assert FRAMEWORKS == ("sklearn", "onnx", "mlflow", "custom")
    tensor = _node(root, "spec.signature.inputs")["items"]
    assert tensor["properties"]["datatype"]["enum"] == list(DATATYPES)
    assert len(DATATYPES) == 13 and {"BOOL", "UINT64", "INT8", "FP16", "BYTES"} <= set(DATATYPES)
    assert tensor["properties"]["shape"]["items"]["minimum"] == -1
    assert _node(root, "spec.artifact.digest")["pattern"] == "^sha256:[a-f0-9]{64}$"
    phases = _node(root, "status.phase")["enum"]
    assert phases == ["Pending", "Verifying", "Ready", "Failed"]


def test_printer_columns_and_names() -> None:
    crd = build_crd(MODEL)
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [(c["name"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert shown == [
        ("Model", ".spec.modelName"),
        ("Version", ".spec.version"),
        ("Framework", ".spec.framework"),
        ("Phase", ".status.phase"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("Model", "models", ["mlm"])


def test_conditions_are_a_list_map_by_type(root: dict[str, Any]) -> None:
    conditions = _node(root, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "reason", "lastTransitionTime"}
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/key",
        "gs://bucket/key",
        "https://host/m.onnx",
        "http://127.0.0.1:9000/m",
        "pvc://claim/path",
        "file:///tmp/m",
    ],
)
def test_artifact_uri_schemes_accepted(uri: str) -> None:
    assert ModelSpec.model_validate(_spec(artifact={"uri": uri})).artifact.uri == uri


@pytest.mark.parametrize(
    "artifact",
    [
        {"uri": "ftp://host/m"},
        {"uri": "/tmp/model"},
        {"uri": "s3://bucket/key", "digest": "md5:abc"},
        {"uri": "s3://bucket/key", "digest": "sha256:" + "AB" * 32},
    ],
)
def test_bad_artifacts_rejected(artifact: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ModelSpec.model_validate(_spec(artifact=artifact))


@pytest.mark.parametrize(
    "overrides",
    [
        {"modelName": "Credit_Risk"},
        {"modelName": "x" * 64},
        {"version": "-3"},
        {"framework": "pytorch"},
        {"framework": "custom"},
        {"entrypoint": {"path": "../score.py"}},
        {"entrypoint": {"path": "/abs/score.py"}},
        {"signature": {"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1]}]}},
        {"signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-2]}]}},
        {"lineage": {"code": {"repository": "r", "commit": "not-a-sha"}}},
        {"unknownField": 1},
    ],
)
def test_invalid_specs_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelSpec.model_validate(_spec(**overrides))


def test_custom_framework_with_entrypoint_and_camel_case_round_trip() -> None:
    spec = ModelSpec.model_validate(
        _spec(framework="custom", entrypoint={"path": "src/score.py", "runFunction": "predict"})
    )
    assert spec.entrypoint is not None
    assert (spec.entrypoint.init_function, spec.entrypoint.run_function) == ("init", "predict")
    dumped = spec.model_dump(mode="json", exclude_defaults=True)
    assert dumped["modelName"] == "credit-risk"
    assert dumped["entrypoint"] == {"path": "src/score.py", "runFunction": "predict"}
    assert ModelSpec.model_validate(dumped) == spec


def test_snake_case_names_are_accepted_too() -> None:
    spec = ModelSpec(
        model_name="m",
        version="1",
        framework="onnx",
        artifact={"uri": "file:///m"},  # type: ignore[arg-type]
    )
    assert spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True) == {
        "modelName": "m",
        "version": "1",
        "framework": "onnx",
        "artifact": {"uri": "file:///m"},
    }


def test_status_parses_operator_output() -> None:
    status = ModelStatus.model_validate(
        {
            "phase": "Ready",
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Verified",
                    "message": "digest matches",
                    "lastTransitionTime": "2024-06-01T10:00:00Z",
                    "observedGeneration": 2,
                }
            ],
            "artifact": {
                "digest": DIGEST,
                "size": 1024,
                "fileCount": 2,
                "verifiedAt": "2024-06-01T10:00:00Z",
            },
            "deployedBy": [{"kind": "OnlineEndpoint", "name": "credit"}],
            "history": [
                {
                    "user": "alice",
                    "time": "2024-06-01T10:00:00Z",
                    "generation": 2,
                    "changes": ["spec.description"],
                }
            ],
            "createdBy": "alice",
            "lastModifiedBy": "alice",
        }
    )
    assert status.artifact is not None and status.artifact.file_count == 2
    assert status.conditions[0].last_transition_time.startswith("2024-")
    with pytest.raises(ValidationError):
        ModelStatus.model_validate({"phase": "Running"})
