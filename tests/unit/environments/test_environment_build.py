"""The build Job, its inputs ConfigMap and the probe Job (docs/environments.md §2.1): the pod
contract the build tools rely on, Pod Security "restricted", no API credentials, the push
Secret only in `push`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlkube.builders.build_config import parse_build_config
from mlkube.builders.environment_build import build_job, probe_job
from mlkube.builders.environment_build_spec import (
    BuildRequest,
    EnvironmentBuildError,
    EnvironmentRef,
    PackagedModel,
    inputs_configmap,
    inputs_owner,
    parse_packages,
    parse_termination,
    probe_configmap,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.reconcile.environment_key import build_key, inputs_from_spec, probe_key

BASE = "127.0.0.1:5000/mlkube/serving-sklearn@sha256:" + "a" * 64
DIGEST = "sha256:" + "a" * 64
ENV = EnvironmentRef(namespace="team", name="lgbm", version="1", object_name="lgbm-1")
BUILD_ENV = {
    "MLKUBE_BUILD_REGISTRY": "127.0.0.1:5000/mlkube",
    "MLKUBE_BUILD_REGISTRY_INSECURE": "true",
    "MLKUBE_BUILD_PUSH_SECRET": "envbuild-push",
    "MLKUBE_IMAGE_PULL_SECRET": "envpull",
    "MLKUBE_BUILD_PIP_FIND_LINKS": "http://10.0.0.1:8081/wheels/",
    "MLKUBE_BUILD_PIP_NO_INDEX": "true",
    "MLKUBE_BUILD_APT_SOURCES": "deb [trusted=yes] http://10.0.0.1:8081/apt ./",
}


def config(**env: str) -> OperatorConfig:
    return OperatorConfig(
        serving_image="localhost/mlkube-serving:abc",
        build=parse_build_config({**BUILD_ENV, **env}),
        batch_pod_annotations=(("mlkube.dev/dev-executor", "local"),),
    )


def request(model: PackagedModel | None = None, **build: Any) -> BuildRequest:
    spec = {"pip": ["LightGBM==4.5.0", "# c"], "apt": ["libgomp1"], **build}
    inputs = inputs_from_spec(
        spec, base_digest=DIGEST, model_digest=model.digest if model else None
    )
    return BuildRequest(ENV, build_key(inputs), BASE, inputs, model)


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def assert_restricted(job: dict[str, Any]) -> None:
    spec = job["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in containers(job).values():
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] == 65532
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in security
    # no hostPath, no projected service-account token: only emptyDirs, the ConfigMap, the Secret
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret"}, volume


def test_job_named_by_key_with_deadlines_and_labels() -> None:
    req = request()
    job = build_job(req, config(MLKUBE_BUILD_TIMEOUT_SECONDS="900"), "mlkube-system")
    assert job["metadata"]["name"] == "envbuild-" + req.key[7:27]
    assert job["metadata"]["namespace"] == "mlkube-system"
    assert job["metadata"]["labels"]["mlkube.dev/build-key"] == req.key[7:70]
    assert job["metadata"]["labels"]["mlkube.dev/environment"] == "team.lgbm-1"
    assert job["metadata"]["annotations"]["mlkube.dev/environment"] == "team/lgbm:1"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (1, 900)
    assert spec["ttlSecondsAfterFinished"] == 86400
    template = spec["template"]
    assert template["metadata"]["annotations"] == {"mlkube.dev/dev-executor": "local"}
    assert template["spec"]["restartPolicy"] == "Never"
    assert template["spec"]["imagePullSecrets"] == [{"name": "envpull"}]
    assert_restricted(job)


def test_containers_follow_the_pod_contract() -> None:
    req = request()
    job = build_job(req, config(), "mlkube-system")
    found = containers(job)
    assert list(found) == ["tools", "install", "push"]
    assert found["tools"]["image"] == "localhost/mlkube-serving:abc"
    assert found["tools"]["command"] == ["python", "-m", "mlkube.envbuild.copy_tools", "/tools"]
    assert found["install"]["image"] == BASE
    assert found["install"]["command"] == [
        "python3", "/tools/mlkube/envbuild/install.py", "--spec", "/inputs/build.json",
        "--layer", "/layer", "--work", "/work",
    ]  # fmt: skip
    assert found["push"]["command"] == [
        "python", "-m", "mlkube.envbuild.push", "--layer", "/layer", "--work", "/work",
        "--base", BASE, "--repository", "127.0.0.1:5000/mlkube/environments",
        "--build-key", req.key, "--environment", "lgbm:1", "--spec", "/inputs/build.json",
        "--insecure", "127.0.0.1:5000", "--docker-config", "/var/run/mlkube/push",
    ]  # fmt: skip
    mounts = {name: {m["mountPath"]: m for m in c["volumeMounts"]} for name, c in found.items()}
    assert mounts["install"]["/tools"]["readOnly"] and mounts["install"]["/inputs"]["readOnly"]
    assert mounts["push"]["/layer"]["readOnly"]
    assert "/layer" not in mounts["tools"]  # the tools image never sees the layer
    for container in found.values():
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["HOME"] == "/tmp" and env["PIP_NO_CACHE_DIR"] == "1"
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_push_secret_reaches_push_alone_read_only() -> None:
    job = build_job(request(), config(), "mlkube-system")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["push-auth"]["secret"] == {"secretName": "envbuild-push", "defaultMode": 0o440}
    holders = {
        name
        for name, c in containers(job).items()
        if any(m["name"] == "push-auth" for m in c["volumeMounts"])
    }
    assert holders == {"push"}
    push_mount = next(
        m for m in containers(job)["push"]["volumeMounts"] if m["name"] == "push-auth"
    )
    assert push_mount["readOnly"] is True
    # no container gets any Secret through its environment either
    assert not any("envFrom" in c for c in containers(job).values())


def test_without_push_secret_or_insecure_registry_no_such_arguments() -> None:
    env = {"MLKUBE_BUILD_PUSH_SECRET": "", "MLKUBE_BUILD_REGISTRY_INSECURE": "false"}
    job = build_job(request(), config(**env), "mlkube-system")
    command = containers(job)["push"]["command"]
    assert "--docker-config" not in command and "--insecure" not in command
    assert "push-auth" not in {v["name"] for v in job["spec"]["template"]["spec"]["volumes"]}


def test_configmap_holds_the_normalised_build_document() -> None:
    req = request(
        files=[{"path": "/opt/app/f.py", "content": "x = 1\n"}],
        env=[{"name": "OMP_NUM_THREADS", "value": "1"}],
        conda="dependencies: [python=3.11, {pip: [MLflow==2.16.0]}]",
    )
    cm = inputs_configmap(req, config(), "mlkube-system")
    assert cm["metadata"]["name"] == build_job(req, config(), "mlkube-system")["metadata"]["name"]
    document = json.loads(cm["data"]["build.json"])
    assert document["buildKey"] == req.key and document["base"] == BASE
    assert document["environment"] == {"namespace": "team", "name": "lgbm", "version": "1"}
    assert document["pip"] == ["lightgbm==4.5.0"]
    # the tools read the parsed environment.yml (they have no YAML parser), normalised
    assert document["conda"] == {"dependencies": ["python=3.11", {"pip": ["mlflow==2.16.0"]}]}
    assert document["apt"] == ["libgomp1"]
    assert document["aptSources"] == ["deb [trusted=yes] http://10.0.0.1:8081/apt ./"]
    assert document["files"] == [{"path": "/opt/app/f.py", "mode": 0o644, "content": "x = 1\n"}]
    assert document["env"] == [{"name": "OMP_NUM_THREADS", "value": "1"}]
    assert document["pipSettings"]["findLinks"] == ["http://10.0.0.1:8081/wheels/"]
    assert document["pipSettings"]["noIndex"] is True
    assert document["model"] is None
    assert document["target"] == {
        "registry": "127.0.0.1:5000",
        "repository": "mlkube/environments",
        "tag": "build-" + req.key[7:39],
        "insecure": True,
    }
    owner = inputs_owner("envbuild-x", "uid-1")["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", "envbuild-x", "uid-1")


def test_packaging_fetches_the_verified_model_into_the_layer() -> None:
    model = PackagedModel("iris-rf", "3", "s3://models/iris/3", "sha256:" + "c" * 64)
    req = request(model)
    cfg = config()
    cfg = OperatorConfig(
        serving_image=cfg.serving_image,
        build=cfg.build,
        storage_secret="storage",
        s3_endpoint_url="http://127.0.0.1:9000",
    )
    job = build_job(req, cfg, "mlkube-system")
    found = containers(job)
    assert list(found) == ["tools", "fetch-model", "install", "push"]
    fetch = found["fetch-model"]
    assert fetch["image"] == "localhost/mlkube-serving:abc"
    assert fetch["command"] == [
        "python", "-m", "mlkube.envbuild.fetch_model", "--uri", "s3://models/iris/3",
        "--digest", "sha256:" + "c" * 64, "--name", "iris-rf", "--layer", "/layer",
        "--work", "/work",
    ]  # fmt: skip
    assert fetch["envFrom"] == [{"secretRef": {"name": "storage", "optional": True}}]
    assert {"name": "MLKUBE_S3_ENDPOINT_URL", "value": "http://127.0.0.1:9000"} in fetch["env"]
    document = json.loads(inputs_configmap(req, cfg, "ns")["data"]["build.json"])
    assert document["model"]["digest"] == "sha256:" + "c" * 64
    assert_restricted(job)


def test_pvc_models_cannot_be_packaged() -> None:
    model = PackagedModel("iris-rf", "3", "pvc://claim/iris", "sha256:" + "c" * 64)
    with pytest.raises(EnvironmentBuildError, match="PVC"):
        build_job(request(model), config(), "mlkube-system")


def test_no_registry_says_how_to_configure_one() -> None:
    with pytest.raises(EnvironmentBuildError, match="MLKUBE_BUILD_REGISTRY"):
        build_job(request(), config(MLKUBE_BUILD_REGISTRY=""), "mlkube-system")
    with pytest.raises(EnvironmentBuildError, match=r"build\.registry"):
        inputs_configmap(request(), config(MLKUBE_BUILD_REGISTRY=""), "mlkube-system")


def test_tools_image_setting_is_used() -> None:
    job = build_job(request(), config(MLKUBE_BUILD_TOOLS_IMAGE="tools:1"), "ns")
    assert containers(job)["tools"]["image"] == containers(job)["push"]["image"] == "tools:1"


def test_probe_job_runs_the_install_script_in_the_environment_image() -> None:
    image = "registry.example/team/scorer@sha256:" + "d" * 64
    key = probe_key("sha256:" + "d" * 64)
    cfg = config(MLKUBE_BUILD_REGISTRY="")  # probing needs no registry
    job = probe_job(ENV, image, key, cfg, "mlkube-system")
    assert job["metadata"]["name"] == "envprobe-" + key[7:27]
    assert job["metadata"]["labels"]["mlkube.dev/component"] == "environment-probe"
    assert job["spec"]["backoffLimit"] == 0
    found = containers(job)
    assert list(found) == ["tools", "probe"]
    assert found["probe"]["image"] == image
    assert found["probe"]["command"] == [
        "python3", "/tools/mlkube/envbuild/install.py", "--spec", "/inputs/build.json",
        "--layer", "/layer", "--work", "/work", "--probe",
    ]  # fmt: skip
    assert "push-auth" not in json.dumps(job)
    assert_restricted(job)
    cm = probe_configmap(ENV, image, key, cfg, "mlkube-system")
    assert cm["metadata"]["name"] == job["metadata"]["name"]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["inputs"]["configMap"]["name"] == cm["metadata"]["name"]
    document = json.loads(cm["data"]["build.json"])
    assert document["probe"] is True and document["image"] == image
    assert (document["pip"], document["apt"], document["files"]) == ([], [], [])


def test_reports_are_parsed() -> None:
    assert parse_termination('{"digest": "sha256:1"}') == {"digest": "sha256:1"}
    assert parse_termination("Traceback ...") is None
    log = 'pushing\n{"mlkubePackages": ["a==1"]}\n{"mlkubePackages": ["b==2"]}\ndone\n'
    assert parse_packages(log) == ["b==2"]
    assert parse_packages("no line") is None
    assert parse_packages('{"mlkubePackages": [1]}') is None


def test_files_over_64_kib_in_all_are_refused_by_the_builder() -> None:
    files = [{"path": f"/opt/app/{i}.txt", "content": "x" * 40_000} for i in range(2)]
    with pytest.raises(EnvironmentBuildError, match="at most 65536 in all"):
        inputs_configmap(request(files=files), config(), "mlkube-system")
