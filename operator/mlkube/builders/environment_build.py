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
from mlkube.builders.storage_init import pvc_claim
from mlkube.contract import ENV_S3_ENDPOINT_URL

BACKOFF_LIMIT: Final = 1
TTL_SECONDS: Final = 86400  # build logs stay readable for a day
PROBE_TIMEOUT_SECONDS: Final = 600
# Containers and volumes (the pod contract of docs/environments.md §2.1; the tools' own
# arguments are mlkube.envbuild's, §2.1.1).
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
PUSH_AUTH_DIR: Final = "/var/run/mlkube/push"  # the Secret's `.dockerconfigjson` inside
SPEC_PATH: Final = f"{INPUTS_DIR}/{SPEC_KEY}"
# copy_tools copies the package tree as is: the script runs with nothing of ours installed.
INSTALL_SCRIPT: Final = f"{TOOLS_DIR}/mlkube/envbuild/install.py"
_ENV: Final = {
    "HOME": TMP_DIR,
    "TMPDIR": TMP_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
_DIRS: Final = ["--layer", LAYER_DIR, "--work", WORK_DIR]


def _container(
    name: str, image: str, command: list[str], config: OperatorConfig, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        # A digest-pinned image (the base, the registry's tools image) is pulled once per
        # node whatever the policy (the dev node's Never applies to its imported tags only).
        "imagePullPolicy": "IfNotPresent" if "@sha256:" in image else config.image_pull_policy,
        "command": command,
        "env": env_list(dict(_ENV)),
        "securityContext": container_security_context(config.run_as_user),
        # A failure's log tail becomes the message the operator shows when the tool could not
        # write its own JSON verdict.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [*mounts, {"name": TMP, "mountPath": TMP_DIR}],
    }


def _mount(name: str, path: str, *, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def _tools_container(config: OperatorConfig) -> dict[str, Any]:
    command = ["python", "-m", "mlkube.envbuild.copy_tools", TOOLS_DIR]
    return _container(TOOLS, tools_image(config), command, config, [_mount(TOOLS, TOOLS_DIR)])


def _fetch_model_container(model: PackagedModel, config: OperatorConfig) -> dict[str, Any]:
    """Tools image (mlkube.storage installed): the artifact into the layer, digest checked."""
    if pvc_claim(model.uri):
        raise EnvironmentBuildError(
            f"model {model.name}:{model.version} is stored on a PVC ({model.uri}), which the "
            "build namespace cannot mount: copy it to s3://, gs:// or https:// to package it"
        )
    command = ["python", "-m", "mlkube.envbuild.fetch_model", "--uri", model.uri,
               "--digest", model.digest, "--name", model.name, *_DIRS]  # fmt: skip
    container = _container(FETCH_MODEL, tools_image(config), command, config,
                           [_mount(LAYER, LAYER_DIR), _mount(WORK, WORK_DIR)])  # fmt: skip
    if config.s3_endpoint_url:
        container["env"].append({"name": ENV_S3_ENDPOINT_URL, "value": config.s3_endpoint_url})
    if config.storage_secret:  # as the storage initializer: the Secret of the build namespace
        container["envFrom"] = [{"secretRef": {"name": config.storage_secret, "optional": True}}]
    return container


def _install_container(image: str, config: OperatorConfig, *, probe: bool) -> dict[str, Any]:
    """The install script run by the image's own python3, as non-root, into /layer."""
    command = ["python3", INSTALL_SCRIPT, "--spec", SPEC_PATH, *_DIRS]
    mounts = [_mount(TOOLS, TOOLS_DIR, read_only=True), _mount(INPUTS, INPUTS_DIR, read_only=True),
              _mount(LAYER, LAYER_DIR), _mount(WORK, WORK_DIR)]  # fmt: skip
    container = _container(PROBE if probe else INSTALL, image,
                           [*command, "--probe"] if probe else command, config, mounts)  # fmt: skip
    container["workingDir"] = WORK_DIR  # apt-get download writes the .debs into its cwd
    return container


def _push_container(
    request: BuildRequest, config: OperatorConfig, volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    build = config.build
    environment = request.environment
    command = [
        "python", "-m", "mlkube.envbuild.push", *_DIRS, "--base", request.base_image,
        "--repository", str(build.image_repository()), "--build-key", request.key,
        "--environment", f"{environment.name}:{environment.version}", "--spec", SPEC_PATH,
    ]  # fmt: skip
    if build.registry_insecure:
        command += ["--insecure", str(build.registry)]
    mounts = [_mount(INPUTS, INPUTS_DIR, read_only=True), _mount(LAYER, LAYER_DIR, read_only=True),
              _mount(WORK, WORK_DIR)]  # fmt: skip
    if build.push_secret:
        command += ["--docker-config", PUSH_AUTH_DIR]
        mounts.append(_mount(PUSH_AUTH, PUSH_AUTH_DIR, read_only=True))
        volumes.append({"name": PUSH_AUTH, "secret": {
            "secretName": build.push_secret, "defaultMode": 0o440}})  # fmt: skip
    return _container(PUSH, tools_image(config), command, config, mounts)


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


def _volumes(config_map: str) -> list[dict[str, Any]]:
    return [
        {"name": TOOLS, "emptyDir": {}},
        {"name": LAYER, "emptyDir": {}},
        {"name": WORK, "emptyDir": {}},
        {"name": INPUTS, "configMap": {"name": config_map}},
    ]


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
    """The Job `build_job_name(key, attempt)` in the build namespace (EnvironmentBuildError: no
    registry, or a model that cannot be packaged)."""
    build_document(request, config)  # the same checks as the ConfigMap's
    name = build_job_name(request.key, request.attempt)
    init = [_tools_container(config)]
    if request.model is not None:
        init.append(_fetch_model_container(request.model, config))
    init.append(_install_container(request.base_image, config, probe=False))
    volumes = _volumes(name)
    push = _push_container(request, config, volumes)
    spec = _pod_spec(config, [push], init, volumes)
    return _job(name, namespace, request.key, request.environment, COMPONENT_BUILD, spec, config,
                backoff=BACKOFF_LIMIT, deadline=config.build.timeout_seconds)  # fmt: skip


def probe_job(
    environment: EnvironmentRef, image: str, key: str, config: OperatorConfig, namespace: str
) -> dict[str, Any]:
    """The Job `envprobe-<key20>` that runs the install script with `--probe` in an `image:`
    environment (packages, Python, serving contract), installing nothing; `key` is
    `probe_key(image digest)`, its inputs the ConfigMap `probe_configmap` makes."""
    name = probe_job_name(key)
    probe = _install_container(image, config, probe=True)
    spec = _pod_spec(config, [probe], [_tools_container(config)], _volumes(name))
    deadline = min(PROBE_TIMEOUT_SECONDS, config.build.timeout_seconds)
    return _job(name, namespace, key, environment, COMPONENT_PROBE, spec, config,
                backoff=0, deadline=deadline)  # fmt: skip
