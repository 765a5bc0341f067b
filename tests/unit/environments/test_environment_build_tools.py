"""The build Job's command lines and build.json are what the real build tools
(mlkube.envbuild, docs/environments.md §2.1.1) accept: each container's arguments go through
that tool's own argument parser, and the normalised conda file through its conda reader."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from mlkube.builders.build_config import parse_build_config
from mlkube.builders.environment_build import build_job, probe_job
from mlkube.builders.environment_build_spec import (
    BuildRequest,
    EnvironmentRef,
    PackagedModel,
    inputs_configmap,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.envbuild import conda, contract, fetch_model, install, push
from mlkube.reconcile.environment_key import build_key, build_tag, inputs_from_spec, probe_key

BASE = "127.0.0.1:5000/mlkube/serving-sklearn@sha256:" + "a" * 64
MODEL = PackagedModel("iris-rf", "3", "s3://models/iris/3", "sha256:" + "c" * 64)
ENV = EnvironmentRef(namespace="team", name="lgbm", version="1", object_name="lgbm-1")
CONFIG = OperatorConfig(
    serving_image="localhost/mlkube-serving:abc",
    build=parse_build_config(
        {
            "MLKUBE_BUILD_REGISTRY": "127.0.0.1:5000/mlkube",
            "MLKUBE_BUILD_REGISTRY_INSECURE": "true",
            "MLKUBE_BUILD_PUSH_SECRET": "envbuild-push",
        }
    ),
)


class Parsed(Exception):
    """Raised with the parsed arguments instead of running the tool."""


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    original = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise Parsed(original(self, *args, **kwargs))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)


def request(**build: Any) -> BuildRequest:
    inputs = inputs_from_spec(
        {"pip": ["lightgbm==4.5.0"], **build}, base_digest=BASE[-71:], model_digest=MODEL.digest
    )
    return BuildRequest(ENV, build_key(inputs), BASE, inputs, MODEL)


def containers(job: dict[str, Any]) -> dict[str, list[str]]:
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c["command"] for c in [*spec["initContainers"], *spec["containers"]]}


def run_parser(main: Any, argv: list[str]) -> argparse.Namespace:
    with pytest.raises(Parsed) as got:
        main(argv)
    namespace: argparse.Namespace = got.value.args[0]
    return namespace


@pytest.mark.usefixtures("parsed")
def test_every_build_container_is_accepted_by_its_tool() -> None:
    req = request()
    commands = containers(build_job(req, CONFIG, "mlkube-system"))
    assert commands["tools"][:3] == ["python", "-m", "mlkube.envbuild.copy_tools"]
    fetch = run_parser(fetch_model.main, commands["fetch-model"][3:])
    assert (fetch.uri, fetch.digest, fetch.layer) == (MODEL.uri, MODEL.digest, "/layer")
    assert commands["install"][1] == "/tools/mlkube/envbuild/install.py"
    installed = run_parser(install.main, commands["install"][2:])
    assert (installed.spec, installed.layer, installed.work) == (
        "/inputs/build.json", "/layer", "/work"
    )  # fmt: skip
    assert not installed.probe
    pushed = run_parser(push.main, commands["push"][3:])
    assert pushed.base == BASE and pushed.build_key == req.key
    assert pushed.repository == "127.0.0.1:5000/mlkube/environments"
    assert pushed.environment == "lgbm:1"
    assert pushed.insecure == ["127.0.0.1:5000"]
    assert pushed.docker_config == "/var/run/mlkube/push"


@pytest.mark.usefixtures("parsed")
def test_the_probe_is_the_install_tool_with_probe() -> None:
    image = "r.example/scorer@sha256:" + "d" * 64
    commands = containers(probe_job(ENV, image, probe_key(image[-71:]), CONFIG, "ns"))
    assert run_parser(install.main, commands["probe"][2:]).probe


def test_the_tag_and_version_are_the_tools_own() -> None:
    key = request().key
    assert build_tag(key) == contract.build_tag(key)
    document = json.loads(inputs_configmap(request(), CONFIG, "ns")["data"]["build.json"])
    assert document["target"]["tag"] == contract.build_tag(key)


def test_the_tools_read_the_normalised_conda_file() -> None:
    text = "dependencies: [python=3.11, pip, {pip: [MLflow==2.16.0]}]"
    document = json.loads(inputs_configmap(request(conda=text), CONFIG, "ns")["data"]["build.json"])
    spec = conda.parse(document["conda"])
    assert (spec.python, spec.pip, spec.unsupported) == ("3.11", ("mlflow==2.16.0",), ())
    refused = json.loads(
        inputs_configmap(request(conda="dependencies: [r-base=4.3]"), CONFIG, "ns")["data"][
            "build.json"
        ]
    )
    assert conda.parse(refused["conda"]).unsupported == ("r-base=4.3",)
