"""The Job that builds an Environment's image and the probe Job of an `image:` environment
(docs/environments.md §2.1, §4; the inputs ConfigMap and names: environment_build_spec.py).

A build appends one layer to the base without privileges: `tools` copies the stdlib build
scripts out of the tools image, `fetch-model` (packaging) puts the verified model artifact in
the layer, `install` runs pip/apt-download/file writes *in the base image itself* as non-root
into the `layer` volume, and `push` tars that layer and pushes base + layer + config. Every
container passes Pod Security "restricted"; the pod has no service-account token, and the
only credential it sees is the push Secret, mounted read-only into `push` alone. The Job
lives in the build namespace and is named by the build key, so identical builds requested
from any namespace meet at one Job. Pure: the controller resolves base, model and key first.
"""

from __future__ import annotations

from typing import Any, Final

from mlkube.builders.environment_build_spec import (
    COMPONENT_BUILD,
    COMPONENT_PROBE,
    SPEC_KEY,
    BuildRequest,
    EnvironmentBuildError,
    EnvironmentRef,
    PackagedModel,
    build_document,
    build_job_name,
    labels,
    object_annotations,
    probe_job_name,
    tools_image,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import container_security_context, env_list, restricted_pod_spec
from mlkube.builders.storage_init import initializer_container, pvc_claim

BACKOFF_LIMIT: Final = 1
TTL_SECONDS: Final = 86400  # build logs stay readable for a day
PROBE_TIMEOUT_SECONDS: Final = 600
# Containers and volumes (the pod contract of docs/environments.md §2.1).
TOOLS: Final = "tools"
FETCH_MODEL: Final = "fetch-model"
INSTALL: Final = "install"
PUSH: Final = "push"
PROBE: Final = "probe"
LAYER: Final = "layer"
WORK: Final = "work"
TMP: Final = "tmp"
INPUTS: Final = "inputs"
PUSH_AUTH: Final = "push-auth"
TOOLS_DIR: Final = "/tools"
LAYER_DIR: Final = "/layer"
WORK_DIR: Final = "/work"
TMP_DIR: Final = "/tmp"
INPUTS_DIR: Final = "/inputs"
PUSH_AUTH_DIR: Final = "/var/run/mlkube/push"
MODEL_DIR: Final = "/opt/mlkube/model"  # in the image; MLKUBE_MODEL_DIR of packaged models
SPEC_PATH: Final = f"{INPUTS_DIR}/{SPEC_KEY}"
REPORT_PATH: Final = f"{WORK_DIR}/report.json"
AUTH_PATH: Final = f"{PUSH_AUTH_DIR}/config.json"
INSTALL_SCRIPT: Final = f"{TOOLS_DIR}/envbuild/install.py"
_ENV: Final = {
    "HOME": TMP_DIR,
    "TMPDIR": TMP_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def _container(
    name: str, image: str, command: list[str], config: OperatorConfig, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "env": env_list(dict(_ENV)),
        "securityContext": container_security_context(config.run_as_user),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [*mounts, {"name": TMP, "mountPath": TMP_DIR}],
    }


def _tools_container(config: OperatorConfig) -> dict[str, Any]:
    command = ["python", "-m", "mlkube.envbuild.tools", "--dest", TOOLS_DIR]
    return _container(TOOLS, tools_image(config), command, config,
                      [{"name": TOOLS, "mountPath": TOOLS_DIR}])  # fmt: skip


def _fetch_model_container(model: PackagedModel, config: OperatorConfig) -> dict[str, Any]:
    if pvc_claim(model.uri):
        raise EnvironmentBuildError(
            f"model {model.name}:{model.version} is stored on a PVC ({model.uri}), which the "
            "build namespace cannot mount: copy it to s3://, gs:// or https:// to package it"
        )
    container = initializer_container(
        name=FETCH_MODEL, uri=model.uri, digest=model.digest, volume=LAYER,
        dest=LAYER_DIR + MODEL_DIR, config=config, resources={},
    )  # fmt: skip
    # The layer's root is mounted, the artifact goes below it (the initializer mounts `dest`).
    container["volumeMounts"][0] = {"name": LAYER, "mountPath": LAYER_DIR}
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return container


def _pod_spec(
    config: OperatorConfig,
    containers: list[dict[str, Any]],
    init_containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    spec = restricted_pod_spec(
        run_as_user=config.run_as_user,
        containers=containers,
        volumes=[*volumes, {"name": TMP, "emptyDir": {}}],
        init_containers=init_containers,
    )
    spec["restartPolicy"] = "Never"
    if config.build.image_pull_secret:
        spec["imagePullSecrets"] = [{"name": config.build.image_pull_secret}]
    return spec


def _job(
    name: str, namespace: str, key: str, environment: EnvironmentRef, component: str,
    spec: dict[str, Any], config: OperatorConfig, *, backoff: int, deadline: int,
) -> dict[str, Any]:  # fmt: skip
    job_labels = labels(key, environment, component)
    template_meta: dict[str, Any] = {"labels": dict(job_labels)}
    if config.batch_pod_annotations:  # the dev cluster's local pod executor
        template_meta["annotations"] = dict(config.batch_pod_annotations)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": job_labels,
            "annotations": object_annotations(key, environment),
        },
        "spec": {
            "backoffLimit": backoff,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {"metadata": template_meta, "spec": spec},
        },
    }


def build_job(request: BuildRequest, config: OperatorConfig, namespace: str) -> dict[str, Any]:
    """The Job `envbuild-<key20>` in the build namespace (EnvironmentBuildError: no registry,
    or a model that cannot be packaged)."""
    build_document(request, config)  # the same checks as the ConfigMap's
    name = build_job_name(request.key)
    init = [_tools_container(config)]
    if request.model is not None:
        init.append(_fetch_model_container(request.model, config))
    install = _container(
        INSTALL, request.base_image,
        ["python3", INSTALL_SCRIPT, "--spec", SPEC_PATH, "--layer", LAYER_DIR,
         "--report", REPORT_PATH],
        config,
        [{"name": TOOLS, "mountPath": TOOLS_DIR, "readOnly": True},
         {"name": INPUTS, "mountPath": INPUTS_DIR, "readOnly": True},
         {"name": LAYER, "mountPath": LAYER_DIR},
         {"name": WORK, "mountPath": WORK_DIR}],
    )  # fmt: skip
    install["workingDir"] = WORK_DIR  # apt-get download writes the .debs into its cwd
    init.append(install)
    push_command = ["python", "-m", "mlkube.envbuild.push", "--spec", SPEC_PATH,
                    "--layer", LAYER_DIR, "--report", REPORT_PATH]  # fmt: skip
    push_mounts: list[dict[str, Any]] = [
        {"name": INPUTS, "mountPath": INPUTS_DIR, "readOnly": True},
        {"name": LAYER, "mountPath": LAYER_DIR, "readOnly": True},
        {"name": WORK, "mountPath": WORK_DIR},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": TOOLS, "emptyDir": {}},
        {"name": LAYER, "emptyDir": {}},
        {"name": WORK, "emptyDir": {}},
        {"name": INPUTS, "configMap": {"name": name}},
    ]
    if config.build.push_secret:
        push_command += ["--auth", AUTH_PATH]
        push_mounts.append({"name": PUSH_AUTH, "mountPath": PUSH_AUTH_DIR, "readOnly": True})
        volumes.append({"name": PUSH_AUTH, "secret": {
            "secretName": config.build.push_secret, "defaultMode": 0o440,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})  # fmt: skip
    push = _container(PUSH, tools_image(config), push_command, config, push_mounts)
    spec = _pod_spec(config, [push], init, volumes)
    return _job(name, namespace, request.key, request.environment, COMPONENT_BUILD, spec, config,
                backoff=BACKOFF_LIMIT, deadline=config.build.timeout_seconds)  # fmt: skip


def probe_job(
    environment: EnvironmentRef, image: str, key: str, config: OperatorConfig, namespace: str
) -> dict[str, Any]:
    """The Job `envprobe-<key20>` that runs the install script's `--probe` in an `image:`
    environment (packages, Python, serving contract), installing nothing; `key` is
    `probe_key(image digest)`."""
    probe = _container(
        PROBE, image,
        ["python3", INSTALL_SCRIPT, "--probe", "--report", "/dev/termination-log"],
        config, [{"name": TOOLS, "mountPath": TOOLS_DIR, "readOnly": True}],
    )  # fmt: skip
    spec = _pod_spec(config, [probe], [_tools_container(config)],
                     [{"name": TOOLS, "emptyDir": {}}])  # fmt: skip
    deadline = min(PROBE_TIMEOUT_SECONDS, config.build.timeout_seconds)
    return _job(probe_job_name(key), namespace, key, environment, COMPONENT_PROBE, spec, config,
                backoff=0, deadline=deadline)  # fmt: skip
