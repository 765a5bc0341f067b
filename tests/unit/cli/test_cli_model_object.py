"""Names, tags, framework inference and the Model manifest built by `mlkube model register`."""

import pytest

from mlkube.cli.errors import CliError
from mlkube.cli.model_object import (
    build_model_object,
    check_model_name,
    check_version,
    infer_framework,
    object_name,
    parse_tags,
    validate_spec,
)

DIGEST = "sha256:" + "ab" * 32


def test_build_model_object_literal():
    obj = build_model_object(
        model_name="credit-risk",
        version="3",
        framework="sklearn",
        artifact_uri="s3://models/credit-risk/3/model.pkl",
        digest=DIGEST,
        namespace="team-a",
        tags={"team": "risk", "stage": "prod"},
        description="gradient boosting",
        entrypoint="score.py",
    )
    assert obj == {
        "apiVersion": "mlkube.dev/v1alpha1",
        "kind": "Model",
        "metadata": {
            "name": "credit-risk-v3",
            "namespace": "team-a",
            "labels": {
                "team": "risk",
                "stage": "prod",
                "mlkube.dev/model": "credit-risk",
                "mlkube.dev/version": "3",
            },
        },
        "spec": {
            "modelName": "credit-risk",
            "version": "3",
            "framework": "sklearn",
            "artifact": {"uri": "s3://models/credit-risk/3/model.pkl", "digest": DIGEST},
            "entrypoint": {"path": "score.py"},
            "description": "gradient boosting",
        },
    }
    validate_spec(obj["spec"])


def test_minimal_object_omits_optional_fields():
    obj = build_model_object(
        model_name="m", version="1", framework="onnx", artifact_uri="file:///m.onnx",
        digest=DIGEST, namespace="default",
    )  # fmt: skip
    assert set(obj["spec"]) == {"modelName", "version", "framework", "artifact"}
    assert obj["metadata"]["labels"] == {"mlkube.dev/model": "m", "mlkube.dev/version": "1"}


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("credit-risk", "3", "credit-risk-v3"),
        ("credit-risk", "2024.06.1", "credit-risk-v2024-06-1"),
        ("m", "RC_1", "m-vrc-1"),
        ("m", "1-", "m-v1"),
    ],
)
def test_object_name(name, version, expected):
    assert object_name(name, version) == expected


def test_long_object_names_stay_valid_and_distinct():
    a = object_name("a" * 63, "1" * 63)
    b = object_name("a" * 63, "1" * 62 + "2")
    assert len(a) == len(b) == 63 and a != b
    assert a[-9] == "-" and a[0] == "a"


def test_check_model_name_suggests_a_dns_label():
    assert check_model_name("credit-risk") == "credit-risk"
    with pytest.raises(CliError, match=r"not a DNS label.*try 'credit-risk'"):
        check_model_name("Credit_Risk")
    with pytest.raises(CliError, match="not a DNS label"):
        check_model_name("a" * 64)


@pytest.mark.parametrize("version", ["3", "1.2.0", "2024_06", "v1-rc.2"])
def test_valid_versions(version):
    assert check_version(version) == version


@pytest.mark.parametrize("version", ["", "-1", "1.", "a b", "x" * 64, "1/2"])
def test_invalid_versions(version):
    with pytest.raises(CliError, match="not a valid label value"):
        check_version(version)


def test_parse_tags():
    assert parse_tags(["team=risk", "example.com/stage=prod", "empty="]) == {
        "team": "risk",
        "example.com/stage": "prod",
        "empty": "",
    }
    assert parse_tags(["a=1", "a=1"]) == {"a": "1"}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("team", "must look like key=value"),
        ("=x", "not a valid label key"),
        ("bad key=x", "not a valid label key"),
        ("UPPER.Prefix/k=v", "not a valid label key"),
        ("mlkube.dev/archived=true", "reserved prefix"),
        ("k=has space", "not a valid label value"),
        ("k=" + "v" * 64, "not a valid label value"),
    ],
)
def test_parse_tags_rejects(pair, message):
    with pytest.raises(CliError, match=message):
        parse_tags([pair])


def test_parse_tags_rejects_conflicts():
    with pytest.raises(CliError, match="given twice"):
        parse_tags(["a=1", "a=2"])


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"model.pkl": b""}, "sklearn"),
        ({"model.joblib": b"", "README.md": b""}, "sklearn"),
        ({"model.onnx": b""}, "onnx"),
        ({"MLmodel": b"", "model.pkl": b""}, "mlflow"),
        ({"model.onnx": b"", "model.pkl": b""}, None),
        ({"weights.bin": b""}, None),
    ],
)
def test_infer_framework_for_folders(tmp_path, files, expected):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    assert infer_framework(str(tmp_path)) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("model.pkl", "sklearn"),
        ("MODEL.JOBLIB", "sklearn"),
        ("m.onnx", "onnx"),
        ("s3://b/m/model.onnx", "onnx"),
        ("https://h/m.pkl?sig=abc", "sklearn"),
        ("m.pt", None),
    ],
)
def test_infer_framework_for_files_and_uris(path, expected):
    assert infer_framework(path) == expected


def test_validate_spec_reports_api_errors_with_field_paths():
    spec = {
        "modelName": "m", "version": "1", "framework": "custom",
        "artifact": {"uri": "file:///m", "digest": DIGEST},
    }  # fmt: skip
    with pytest.raises(CliError, match=r"entrypoint is required when spec\.framework is custom"):
        validate_spec(spec)
    with pytest.raises(CliError) as caught:
        validate_spec(spec)
    assert "Value error" not in str(caught.value)
    with pytest.raises(CliError, match="unknown framework 'tf': choose one of sklearn, onnx"):
        validate_spec({**spec, "framework": "tf"})
    with pytest.raises(CliError, match=r"spec\.artifact\.uri"):
        validate_spec({**spec, "framework": "onnx", "artifact": {"uri": "/no/scheme"}})
