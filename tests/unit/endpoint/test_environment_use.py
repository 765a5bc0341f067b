"""Resolving `environment:` references and running the model server on the environment's image
(docs/environments.md §4/§5): digest, pull secret, waiting/refusing reasons, packaged models."""

from __future__ import annotations

from typing import Any

from mlkube import __version__
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.build_config import BuildConfig
from mlkube.builders.endpoint_server import build_server_deployment
from mlkube.builders.environment_use import (
    INCOMPATIBLE,
    NOT_FOUND,
    NOT_READY,
    PACKAGED_MODEL_DIR,
    EnvironmentProblem,
    EnvironmentUse,
    parse_reference,
    resolve_all,
    resolve_environment,
    version_key,
)
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig, parse_operator_config

IMAGE = "127.0.0.1:5000/mlkube/environments@sha256:" + "a" * 64
IMAGE_B = "127.0.0.1:5000/mlkube/environments@sha256:" + "b" * 64
DIGEST_V3 = "sha256:" + "3" * 64


def env_obj(
    name: str = "lgbm",
    version: str = "1",
    *,
    ready: bool = True,
    image: str | None = IMAGE,
    serving: dict[str, Any] | None = None,
    packaged: dict[str, Any] | None = None,
    created: str = "2026-11-30T10:00:00Z",
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Ready" if ready else "Building",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if image:
        status["image"] = image
    if serving is not None:
        status["serving"] = serving
    if packaged is not None:
        status["packagedModel"] = packaged
    return {
        "metadata": {"name": f"{name}-{version}", "creationTimestamp": created},
        "spec": {"environmentName": name, "version": version},
        "status": status,
    }


def test_references_and_version_order() -> None:
    assert parse_reference("lgbm:1") == ("lgbm", "1")
    assert parse_reference("lgbm@latest") == ("lgbm", "latest")
    assert parse_reference("mlkube-sklearn:0.1.0") == ("mlkube-sklearn", "0.1.0")
    assert version_key("10") > version_key("9")
    assert version_key("1.10") > version_key("1.9")


def test_ready_environment_resolves_to_its_digest() -> None:
    got = resolve_environment("lgbm:1", [env_obj(), env_obj(version="2", image=None)])
    assert got == EnvironmentUse(reference="lgbm:1", name="lgbm", version="1", image=IMAGE)
    assert isinstance(got, EnvironmentUse)
    assert got.record() == {"name": "lgbm", "version": "1", "image": IMAGE}


def test_latest_is_the_highest_version_numerically() -> None:
    envs = [env_obj(version="9"), env_obj(version="10", image=IMAGE_B)]
    got = resolve_environment("lgbm@latest", envs)
    assert isinstance(got, EnvironmentUse)
    assert (got.version, got.image) == ("10", IMAGE_B)


def test_missing_and_building_environments_wait() -> None:
    missing = resolve_environment("lgbm:3", [env_obj()])
    assert missing == EnvironmentProblem("lgbm:3", NOT_READY, "Environment lgbm:3 does not exist")
    building = resolve_environment("lgbm:1", [env_obj(ready=False, image=None)])
    assert isinstance(building, EnvironmentProblem)
    assert building.reason == NOT_READY and not building.degraded
    assert "is not Ready (Building)" in building.message
    # Ready without a digest-pinned image is not usable: pods must never run a moving tag.
    tagged = resolve_environment("lgbm:1", [env_obj(image="registry.example/x:1")])
    assert isinstance(tagged, EnvironmentProblem) and tagged.reason == NOT_READY


def test_incompatible_image_is_refused_with_the_probe_error() -> None:
    env = env_obj(serving={"compatible": False, "message": "No module named mlkube_serving"})
    got = resolve_environment("lgbm:1", [env])
    assert isinstance(got, EnvironmentProblem)
    assert got.reason == INCOMPATIBLE and got.degraded
    assert got.message == (
        f"environment lgbm:1 (image {IMAGE}) does not provide the mlkube serving entrypoint "
        "(`python -m mlkube_serving`): No module named mlkube_serving; build it from a curated "
        "base (build.base: mlkube-sklearn:0.1.0) or install mlkube[serving] into the image"
    )
    # A pipeline step runs the user's command: the serving contract does not matter there.
    assert isinstance(resolve_environment("lgbm:1", [env], serving=False), EnvironmentUse)


def test_duplicate_name_version_uses_the_ready_one() -> None:
    older = env_obj(created="2026-11-30T09:00:00Z")
    younger = env_obj(ready=False, image=None, created="2026-11-30T11:00:00Z")
    got = resolve_environment("lgbm:1", [younger, older])
    assert isinstance(got, EnvironmentUse) and got.image == IMAGE


def test_curated_references_come_from_the_catalogue_or_the_serving_image() -> None:
    configured = {"mlkube-sklearn": "reg/serving-sklearn@sha256:" + "c" * 64}
    got = resolve_environment(f"mlkube-sklearn:{__version__}", [], configured)
    assert isinstance(got, EnvironmentUse) and got.image == configured["mlkube-sklearn"]
    assert got.record() == {"name": "mlkube-sklearn", "version": __version__,
                            "image": configured["mlkube-sklearn"]}  # fmt: skip
    derived = resolve_environment(f"mlkube-onnx:{__version__}", [], configured,
                                  serving_image="reg/serving:1")  # fmt: skip
    assert isinstance(derived, EnvironmentUse) and derived.image == "reg/serving-onnx:1"
    # Curated environments are versioned with mlkube: another version is not offered.
    other = resolve_environment("mlkube-onnx:9.9.9", [], configured, serving_image="reg/s:1")
    assert isinstance(other, EnvironmentProblem) and other.reason == NOT_FOUND and other.degraded
    assert "ships mlkube-onnx:" in other.message
    uses, problems = resolve_all(
        [f"mlkube-sklearn:{__version__}", "lgbm:1", "lgbm:1"], [env_obj()], configured
    )
    assert sorted(uses) == ["lgbm:1", f"mlkube-sklearn:{__version__}"] and problems == []


def test_operator_config_carries_the_pull_secret() -> None:
    config = parse_operator_config({"MLKUBE_IMAGE_PULL_SECRET": "envpull"})
    assert config.build.image_pull_secret == "envpull"


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def test_server_runs_on_the_environment_image_with_the_pull_secret(
    owner: EndpointRef, spec: OnlineEndpointSpec, models: dict[str, ModelFacts]
) -> None:
    config = OperatorConfig(
        serving_image="reg/serving:1", build=BuildConfig(image_pull_secret="envpull")
    )
    use = EnvironmentUse(reference="lgbm:1", name="lgbm", version="1", image=IMAGE)
    pod = _pod(build_server_deployment(owner, spec.deployments[0], models["credit-risk-v3"],
                                       config, use))  # fmt: skip
    server = pod["containers"][0]
    assert (server["name"], server["image"]) == ("server", IMAGE)
    assert server["command"] == ["python", "-m", "mlkube_serving", "serve"]
    assert pod["imagePullSecrets"] == [{"name": "envpull"}]
    # The storage initializer is mlkube's own: it keeps the serving image and still downloads.
    init = pod["initContainers"][0]
    assert (init["name"], init["image"]) == ("storage-initializer", "reg/serving:1")
    assert {v["name"] for v in pod["volumes"]} == {"model", "tmp"}
    # Without an environment nothing changes: no pull secret, the serving image.
    plain = _pod(build_server_deployment(owner, spec.deployments[0], models["credit-risk-v3"],
                                         config))  # fmt: skip
    assert "imagePullSecrets" not in plain and plain["containers"][0]["image"] == "reg/serving:1"


def test_packaged_model_needs_no_download(
    owner: EndpointRef, spec: OnlineEndpointSpec, models: dict[str, ModelFacts]
) -> None:
    config = OperatorConfig(serving_image="reg/serving:1")
    model = models["credit-risk-v3"]
    use = EnvironmentUse(
        reference="credit-risk-v3-pkg:3", name="credit-risk-v3-pkg", version="3", image=IMAGE,
        packaged_model="credit-risk-v3", packaged_digest=DIGEST_V3,
    )  # fmt: skip
    pod = _pod(build_server_deployment(owner, spec.deployments[0], model, config, use))
    server = pod["containers"][0]
    assert "initContainers" not in pod
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert [m["name"] for m in server["volumeMounts"]] == ["tmp"]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MLKUBE_MODEL_DIR"] == PACKAGED_MODEL_DIR
    assert "imagePullSecrets" not in pod  # none configured
    # Another artifact of the same Model name is not what the image holds: download as usual.
    stale = EnvironmentUse(
        reference="x:1", name="x", version="1", image=IMAGE,
        packaged_model="credit-risk-v3", packaged_digest="sha256:" + "9" * 64,
    )  # fmt: skip
    pod = _pod(build_server_deployment(owner, spec.deployments[0], model, config, stale))
    assert pod["initContainers"][0]["name"] == "storage-initializer"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MLKUBE_MODEL_DIR"] == "/mnt/models"
