"""The Job of one attempt of one container step of a PipelineRun (docs/pipelines.md §2).

Pure: the controller resolves everything first (rendered command, args and env, input URIs
with digests, the output prefix, the cache key) and hands it in as a `StepPod`. The pod is
three containers around the user's image: the init container `inputs` (serving image)
downloads and verifies every artifact input, `main` runs the user's command under a small
/bin/sh wrapper that records its pid and exit code, and `outputs` (serving image) waits for
that exit code, uploads the declared outputs and writes the summary as its termination
message. Only the two mlkube containers get storage credentials (from the storage Secret);
the user's container gets none, and no container gets API credentials. One Job per attempt,
`backoffLimit: 0`: the operator retries by creating attempt N+1, so every attempt stays
visible, and a deterministic name lets a restarted operator find its Jobs instead of making
new ones.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube import contract as c
from mlkube.builders import pipeline_contract as pc
from mlkube.builders.batch_pods import claims_of
from mlkube.builders.environment_use import add_pull_secret
from mlkube.builders.names import label_value
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import (
    TMP_DIR,
    TMP_VOLUME,
    container_security_context,
    env_list,
    restricted_pod_spec,
    tmp_volume,
)
from mlkube.reconcile.pipeline_cache import cache_label

MAX_JOB_NAME: Final = 52  # as CronJob: room for the pod suffix the Job controller adds
_HASH: Final = 8
_DNS: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
INPUTS_VOLUME: Final = "mlkube-inputs"
OUTPUTS_VOLUME: Final = "mlkube-outputs"
RUN_VOLUME: Final = "mlkube-run"
# main's own /tmp: the mlkube containers' /tmp is their HOME (user site-packages, cloud SDK
# config files), which the user's code must not be able to write into.
MAIN_TMP_VOLUME: Final = "mlkube-main-tmp"
INPUTS_CONTAINER: Final = "inputs"
MAIN_CONTAINER: Final = "main"
OUTPUTS_CONTAINER: Final = "outputs"
# `inputs`/`outputs` run as run_as_user + this (agent_security_context says why).
AGENT_UID_OFFSET: Final = 1
CACHE_KEY_LABEL_LENGTH: Final = 63
PATHS: Final = pc.StepPaths()


@dataclass(frozen=True)
class RunRef:
    """The owning PipelineRun."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class StepInput:
    """An input as the pod sees it: an artifact (uri, digest) or a plain value."""

    name: str
    uri: str | None = None
    digest: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class StepOutput:
    name: str
    type: str = "artifact"  # artifact | parameter | metrics


@dataclass(frozen=True)
class StepPod:
    """Everything resolved for one attempt (rendered templates, digests, prefix, cache key)."""

    step: str
    attempt: int
    image: str
    prefix: str  # <artifactStore>/<namespace>/pipelineruns/<run>/<step>/a<N>
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[dict[str, Any], ...] = ()  # the user's EnvVars, values rendered
    resources: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[StepInput, ...] = ()
    outputs: tuple[StepOutput, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()  # the run's resolved parameters
    cache_key: str | None = None  # None: uncacheable (no cache-key label)
    timeout_seconds: int | None = None
    pull_secret: str | None = None  # the image is an Environment's: MLKUBE_IMAGE_PULL_SECRET


def step_job_name(run: str, step: str, attempt: int) -> str:
    """`<run>-<step>-a<N>`, a DNS label of at most 52 characters (hash-shortened when longer;
    the hash covers the parts separately, so no two (run, step, attempt) share a name)."""
    joined = f"{run}-{step}-a{attempt}"
    if len(joined) <= MAX_JOB_NAME and _DNS.match(joined):
        return joined
    suffix = hashlib.sha256("\0".join((run, step, str(attempt))).encode()).hexdigest()[:_HASH]
    cleaned = re.sub(r"[^a-z0-9-]+", "-", joined.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "p-" + cleaned
    head = cleaned[: MAX_JOB_NAME - _HASH - 1].rstrip("-")
    return f"{head}-{suffix}"


def cache_key_label(key: str) -> str:
    """The label value of a cache key: its first 63 hex characters (label value limit)."""
    return cache_label(key)


def run_labels(run: str) -> dict[str, str]:
    return {c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_PIPELINE_RUN: label_value(run)}


def step_labels(run: str, pod: StepPod) -> dict[str, str]:
    labels = {**run_labels(run), c.LABEL_PIPELINE_STEP: pod.step}
    if pod.cache_key:
        labels[c.LABEL_CACHE_KEY] = cache_key_label(pod.cache_key)
    return labels


def step_manifest(run: RunRef, pod: StepPod) -> pc.StepManifest:
    """`MLKUBE_STEP`: what both mlkube containers read (artifact inputs only). Raises
    pc.ContractError for names or values the step containers would refuse."""
    return pc.StepManifest(
        run=run.name,
        step=pod.step,
        attempt=pod.attempt,
        prefix=pod.prefix,
        inputs=tuple(pc.StepInput(i.name, i.uri, i.digest or "") for i in pod.inputs if i.uri),
        outputs=tuple(pc.StepOutput(o.name, o.type) for o in pod.outputs),  # type: ignore[arg-type]
    )


def main_command(command: tuple[str, ...], args: tuple[str, ...]) -> list[str]:
    """The wrapper around the user's command; without a command the first arg is the program
    (the wrapper cannot run an image's own entrypoint). The kubelet turns `$$` into `$` in
    command and args, so the wrapper script goes in with every `$` doubled (its `$$` must reach
    the shell as `$$`); the user's own command and args get the expansion they always get."""
    argv = pc.main_command(command, args) if command else pc.main_command(args[:1], args[1:])
    argv[2] = argv[2].replace("$", "$$")
    return argv


def owner_reference(run: RunRef) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PIPELINE_RUN,
        "name": run.name,
        "uid": run.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def agent_security_context(run_as_user: int) -> dict[str, Any]:
    """The mlkube containers (`inputs`, `outputs`) run as another uid than `main`, in its group.

    The pod shares one process namespace (so `outputs` sees `main` end) and `outputs` holds the
    storage credentials in its environment: under the same uid, the user's code could read
    them from /proc/<pid>/environ. A different uid (no CAP_SYS_PTRACE) closes that; the shared
    group (and the pod's fsGroup on the volumes) still lets each read what the other writes
    with the usual umask (a file `main` makes 0600 cannot be uploaded, and the step says so).
    """
    return {
        **container_security_context(run_as_user + AGENT_UID_OFFSET),
        "runAsGroup": run_as_user,
    }


def _mlkube_container(
    name: str, run: RunRef, pod: StepPod, config: OperatorConfig, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    # The root is the default, said explicitly: a runner that moves the volumes (the dev pod
    # executor) maps this value like a mount path; a literal in the program it cannot map.
    env = {
        "HOME": TMP_DIR,
        pc.ENV_STEP: step_manifest(run, pod).to_json(),
        pc.ENV_STEP_ROOT: pc.STEP_ROOT,
    }
    if config.s3_endpoint_url:
        env[c.ENV_S3_ENDPOINT_URL] = config.s3_endpoint_url
    container: dict[str, Any] = {
        "name": name,
        "image": config.serving_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mlkube_serving", "step", name],
        "env": env_list(env),
        "securityContext": agent_security_context(config.run_as_user),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [*mounts, {"name": TMP_VOLUME, "mountPath": TMP_DIR}],
    }
    if config.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": config.storage_secret, "optional": True}}]
    return container


def _main_env(pod: StepPod) -> list[dict[str, Any]]:
    ours = {pc.ENV_INPUTS: PATHS.inputs, pc.ENV_OUTPUTS: PATHS.outputs}
    for i in pod.inputs:
        value = PATHS.input(i.name) if i.uri else (i.value or "")
        ours[pc.step_env_name("input", i.name)] = value
    for o in pod.outputs:
        ours[pc.step_env_name("output", o.name)] = PATHS.output(o.name)
    for name, value in pod.parameters:
        ours[pc.step_env_name("param", name)] = value
    users = [dict(e) for e in pod.env if e.get("name") not in ours]
    # Values, not templates: escaped so the kubelet's `$(VAR)`/`$$` expansion leaves them as is.
    return [*env_list({k: pc.kube_escape(v) for k, v in ours.items()}), *users]


def _main_container(pod: StepPod, config: OperatorConfig) -> dict[str, Any]:
    security = container_security_context(config.run_as_user)
    # The user's image may write where it likes in its own filesystem (training code writes
    # caches and checkpoints next to itself); the restricted profile does not require a
    # read-only root, and the pod holds no credentials to protect.
    security["readOnlyRootFilesystem"] = False
    container: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": pod.image,
        "command": main_command(pod.command, pod.args),
        "env": _main_env(pod),
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": INPUTS_VOLUME, "mountPath": PATHS.inputs, "readOnly": True},
            {"name": OUTPUTS_VOLUME, "mountPath": PATHS.outputs},
            {"name": RUN_VOLUME, "mountPath": PATHS.run},
            {"name": MAIN_TMP_VOLUME, "mountPath": TMP_DIR},
        ],
    }
    if pod.resources:
        container["resources"] = pod.resources
    return container


def _mount_claims(
    containers: list[dict[str, Any]], claims: dict[str, bool], volumes: list[dict[str, Any]]
) -> None:
    for claim, read_only in sorted(claims.items()):
        volume = f"pvc-{claim}"[:63]
        volumes.append(
            {"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
        )
        for container in containers:
            container["volumeMounts"].append(
                {"name": volume, "mountPath": f"{c.PVC_ROOT}/{claim}", "readOnly": read_only}
            )
            container["env"].append({"name": c.ENV_PVC_ROOT, "value": c.PVC_ROOT})


def build_step_job(run: RunRef, pod: StepPod, config: OperatorConfig) -> dict[str, Any]:
    """The Job of attempt `pod.attempt` of step `pod.step` (pc.ContractError: a name or value
    the step containers would refuse; the step fails with that message)."""
    inputs = _mlkube_container(
        INPUTS_CONTAINER, run, pod, config,
        [{"name": INPUTS_VOLUME, "mountPath": PATHS.inputs},
         {"name": OUTPUTS_VOLUME, "mountPath": PATHS.outputs}],
    )  # fmt: skip
    outputs = _mlkube_container(
        OUTPUTS_CONTAINER, run, pod, config,
        [{"name": OUTPUTS_VOLUME, "mountPath": PATHS.outputs, "readOnly": True},
         {"name": RUN_VOLUME, "mountPath": PATHS.run, "readOnly": True}],
    )  # fmt: skip
    main = _main_container(pod, config)
    volumes: list[dict[str, Any]] = [
        {"name": INPUTS_VOLUME, "emptyDir": {}},
        {"name": OUTPUTS_VOLUME, "emptyDir": {}},
        {"name": RUN_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}},
        tmp_volume(),
        {**tmp_volume(), "name": MAIN_TMP_VOLUME},
    ]
    _mount_claims([inputs], claims_of([(i.uri, True) for i in pod.inputs if i.uri]), volumes)
    _mount_claims([outputs], claims_of([(pod.prefix, False)]), volumes)
    spec = restricted_pod_spec(
        run_as_user=config.run_as_user,
        containers=[main, outputs],
        volumes=volumes,
        init_containers=[inputs],
    )
    spec["restartPolicy"] = "Never"
    add_pull_secret(spec, pod.pull_secret)
    # `outputs` sees whether main's process is still alive (killed: OOM, deadline).
    spec["shareProcessNamespace"] = True
    labels = step_labels(run.name, pod)
    template_meta: dict[str, Any] = {"labels": dict(labels)}
    if config.batch_pod_annotations:
        template_meta["annotations"] = dict(config.batch_pod_annotations)
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {"metadata": template_meta, "spec": spec},
    }
    if pod.timeout_seconds:
        job_spec["activeDeadlineSeconds"] = pod.timeout_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": step_job_name(run.name, pod.step, pod.attempt),
            "namespace": run.namespace,
            "labels": labels,
            "annotations": {c.ANNOTATION_ATTEMPT: str(pod.attempt)},
            "ownerReferences": [owner_reference(run)],
        },
        "spec": job_spec,
    }
