"""The Environment kind, Python side: the validators mirror the CEL rules (so the CLI refuses
what the API server would), the checks CEL cannot do (total file size), the reference syntax
and parsing, and the published names and columns. The API server side is
tests/integration/test_environment_crd.py."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlkube.api import environment as e
from mlkube.api.batch import BatchDeployment
from mlkube.api.crdgen import build_crd
from mlkube.api.endpoint import OnlineDeployment
from mlkube.api.kinds import find_kind
from mlkube.api.pipeline_step import MSG_CONTAINER_IMAGE, MSG_IMAGE_XOR_ENVIRONMENT, Step


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "environmentName": "lgbm",
        "version": "1",
        "build": {"base": "mlkube-sklearn:0.1.0", "pip": ["lightgbm==4.5.0"]},
    }
    spec.update(overrides)
    return spec


def _refused(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        e.EnvironmentSpec.model_validate(spec)
    return str(info.value)


def test_a_build_and_an_image_environment_validate() -> None:
    built = e.EnvironmentSpec.model_validate(_spec())
    assert built.reference == "lgbm:1"
    assert built.build is not None and built.build.pip == ["lightgbm==4.5.0"]
    image = e.EnvironmentSpec.model_validate(_spec(build=None, image="r.example/s:2"))
    assert image.image == "r.example/s:2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": "r/i:1"}, e.MSG_ONE_SOURCE),
        ({"build": None}, e.MSG_ONE_SOURCE),
        ({"build": None, "image": "r/i:1", "model": "m"}, e.MSG_MODEL_NEEDS_BUILD),
        ({"environmentName": "mlkube-sklearn"}, e.MSG_RESERVED),
        ({"build": {"base": "b", "pip": ["-e ."]}}, e.MSG_PIP_LINE),
        ({"build": {"base": "b", "pip": ["# comment"]}}, e.MSG_PIP_LINE),
        ({"build": {"base": "b", "apt": ["Bad Name"]}}, e.MSG_APT_PACKAGE),
        ({"build": {"base": "b", "files": [{"path": "/a/../b", "content": ""}]}}, e.MSG_FILE_PATH),
        ({"build": {"base": "b", "env": [{"name": "MLKUBE_X"}]}}, e.MSG_RESERVED_ENV),
        (
            {"build": {"base": "b", "files": [
                {"path": f"/f{i}", "content": "x" * 40_000} for i in range(2)]}},
            e.MSG_FILES_TOTAL,
        ),
    ],
)  # fmt: skip
def test_validators_mirror_the_cel_rules(overrides: dict[str, Any], message: str) -> None:
    assert message in _refused(_spec(**overrides))


def test_every_cel_message_is_published_in_the_crd() -> None:
    text = str(build_crd(e.ENVIRONMENT))
    for message in (
        e.MSG_ONE_SOURCE, e.MSG_RESERVED, e.MSG_NAME_IMMUTABLE, e.MSG_VERSION_IMMUTABLE,
        e.MSG_SOURCE_IMMUTABLE, e.MSG_MODEL_IMMUTABLE, e.MSG_MODEL_NEEDS_BUILD, e.MSG_PIP_LINE,
        e.MSG_APT_PACKAGE, e.MSG_FILE_PATH, e.MSG_RESERVED_ENV,
    ):  # fmt: skip
        assert message in text, message


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("lgbm:1", ("lgbm", "1")),
        ("lgbm:2024.06.1", ("lgbm", "2024.06.1")),
        ("mlkube-sklearn:0.1.0", ("mlkube-sklearn", "0.1.0")),
        ("lgbm@latest", ("lgbm", None)),
    ],
)
def test_references_parse(ref: str, parsed: tuple[str, str | None]) -> None:
    deployment = OnlineDeployment.model_validate({"name": "blue", "model": "m", "environment": ref})
    assert deployment.environment == ref
    assert e.parse_reference(ref) == parsed


@pytest.mark.parametrize("ref", ["lgbm", "lgbm:", "LGBM:1", "lgbm@1", "lgbm:1:2", "a:-1"])
def test_malformed_references_are_refused_everywhere(ref: str) -> None:
    with pytest.raises(ValidationError, match="NAME:VERSION"):
        OnlineDeployment.model_validate({"name": "blue", "model": "m", "environment": ref})
    with pytest.raises(ValidationError, match="NAME:VERSION"):
        BatchDeployment.model_validate({"name": "b", "model": "m", "environment": ref})
    with pytest.raises(ValidationError, match="NAME:VERSION"):
        Step.model_validate({"name": "train", "environment": ref})


def test_a_container_step_takes_an_image_or_an_environment() -> None:
    assert Step.model_validate({"name": "train", "environment": "lgbm:1"}).image is None
    with pytest.raises(ValidationError, match="not both"):
        Step.model_validate({"name": "t", "environment": "lgbm:1", "image": "busybox"})
    assert MSG_IMAGE_XOR_ENVIRONMENT.startswith("set spec.steps[].image")
    with pytest.raises(ValidationError, match=r"or spec\.steps"):
        Step.model_validate({"name": "t"})
    assert "environment" in MSG_CONTAINER_IMAGE


def test_names_columns_and_kstatus_default() -> None:
    assert find_kind("mlenv") is e.ENVIRONMENT is find_kind("environments")
    crd = build_crd(e.ENVIRONMENT)
    version = crd["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Environment", "Version", "Phase", "Digest", "Image", "Base", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["default"] == {"observedGeneration": 0}
    assert {"image", "imageDigest", "buildKey", "packages", "usedBy", "serving"} <= set(
        status["properties"]
    )
