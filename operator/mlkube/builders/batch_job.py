"""The three Jobs of a BatchJob: plan (one pod), score (an Indexed Job) and merge.

Pure manifests (docs/batch-endpoints.md §3, contract C1 of issue 11). Names are deterministic
(`<job>-<step>-<hash of job, step and uid>`) and the Jobs are created with POST only, so a
restarted operator finds its Jobs instead of starting a second run, and a BatchJob recreated
under the same name never adopts the old object's Jobs while they are garbage-collected.
Every pod runs the serving image as `python -m mlkube_serving batch <step>` under the
restricted profile, without API credentials; storage credentials come only from the storage
Secret. The score pods first run the storage initializer, which refuses any model bytes but
the digest the Model recorded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from mlkube import contract as c
from mlkube.builders.batch_settings import BatchSettings
from mlkube.builders.endpoint_server import model_volume_limit
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import label_value
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import (
    TMP_DIR,
    TMP_VOLUME,
    container_security_context,
    env_list,
    memory_limit_env,
    restricted_pod_spec,
)
from mlkube.builders.storage_init import initializer_container, pvc_claim

Step = Literal["plan", "score", "merge"]
STEPS: Final[tuple[Step, ...]] = ("plan", "score", "merge")
CONTAINER: Final = "scorer"
MODEL_VOLUME: Final = "model"
# Scratch for remote files handed to scoring scripts and parquet staging: more than /tmp of
# the online pods, still bounded so a runaway job is evicted instead of filling the node.
SCRATCH_LIMIT: Final = "2Gi"
EXIT_THRESHOLD: Final = 42  # the scorer's exit codes that no retry can fix (§3)
EXIT_BAD_INPUT: Final = 43
PLAN_BACKOFF: Final = 2  # plan and merge pods: a lost node may cost a retry, a bug may not loop
ENV_LOG_LEVEL: Final = "MLKUBE_LOG_LEVEL"
WORK_PREFIX: Final = "_mlkube/work"
_MAX_NAME: Final = 63
_HASH: Final = 8


@dataclass(frozen=True)
class BatchJobRef:
    """The owning BatchJob."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class ScoreShape:
    """What the plan step decided: the plan the workers must see, and how many shards."""

    plan_digest: str
    indexes: int
    work: str | None = None  # resumed job: work list path, relative to the output


def step_job_name(job: str, step: str, uid: str) -> str:
    """`<job>-<step>-<hash>` as a DNS label (the head is shortened, never the hash)."""
    suffix = hashlib.sha256("\0".join(("batch", job, step, uid)).encode()).hexdigest()[:_HASH]
    head = re.sub(r"[^a-z0-9-]+", "-", f"{job}-{step}".lower()).strip("-")
    head = head[: _MAX_NAME - _HASH - 1].rstrip("-")
    return f"{head}-{suffix}"


def work_path(job: str) -> str:
    return f"{WORK_PREFIX}/{job}.json"


def job_labels(owner: BatchJobRef) -> dict[str, str]:
    return {c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_BATCH_JOB: label_value(owner.name)}


def owner_reference(owner: BatchJobRef) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_BATCH_JOB,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _storage_env(settings: BatchSettings, config: OperatorConfig) -> list[dict[str, Any]]:
    ours = {"HOME": TMP_DIR, ENV_LOG_LEVEL: settings.logging_level}
    if config.s3_endpoint_url:
        ours[c.ENV_S3_ENDPOINT_URL] = config.s3_endpoint_url
    extra = {name: value for name, value in settings.env if name not in ours}
    return env_list({**ours, **extra})


def _claims(uris: list[tuple[str, bool]]) -> dict[str, bool]:
    """pvc claims of the URIs -> read-only (a claim written anywhere is mounted read-write)."""
    claims: dict[str, bool] = {}
    for uri, read_only in uris:
        claim = pvc_claim(uri)
        if claim:
            claims[claim] = claims.get(claim, True) and read_only
    return claims


def _container(
    step: Step,
    args: list[str],
    settings: BatchSettings,
    config: OperatorConfig,
    sized: bool = False,
) -> dict[str, Any]:
    """The `scorer` container; `sized`: it gets the deployment's resources (score pods only:
    listing and merging are light)."""
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": config.serving_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mlkube_serving", "batch", step, *args],
        "env": _storage_env(settings, config),
        "securityContext": container_security_context(config.run_as_user),
        # The summary JSON is the termination message; a crash shows the log's tail instead.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": TMP_DIR}],
    }
    if config.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": config.storage_secret, "optional": True}}]
    if sized and settings.resources:
        container["resources"] = settings.resources
        if (settings.resources.get("limits") or {}).get("memory"):
            container["env"].append(memory_limit_env(CONTAINER))
    return container


def _pod_template(
    owner: BatchJobRef,
    step: Step,
    containers: list[dict[str, Any]],
    claims: dict[str, bool],
    config: OperatorConfig,
    init: list[dict[str, Any]] | None = None,
    model_limit: str | None = None,
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": SCRATCH_LIMIT}}]
    if model_limit:
        volumes.append({"name": MODEL_VOLUME, "emptyDir": {"sizeLimit": model_limit}})
    for claim, read_only in sorted(claims.items()):
        volumes.append(
            {
                "name": f"pvc-{claim}"[:63],
                "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only},
            }
        )
        for container in containers:
            container["volumeMounts"].append(
                {
                    "name": f"pvc-{claim}"[:63],
                    "mountPath": f"{c.PVC_ROOT}/{claim}",
                    "readOnly": read_only,
                }
            )
            container["env"].append({"name": c.ENV_PVC_ROOT, "value": c.PVC_ROOT})
    spec = restricted_pod_spec(
        run_as_user=config.run_as_user,
        containers=containers,
        volumes=volumes,
        init_containers=init,
    )
    spec["restartPolicy"] = "Never"
    metadata: dict[str, Any] = {"labels": {**job_labels(owner), c.LABEL_BATCH_STEP: step}}
    if config.batch_pod_annotations:
        metadata["annotations"] = dict(config.batch_pod_annotations)
    return {"metadata": metadata, "spec": spec}


def _failure_policy() -> dict[str, Any]:
    """Evictions are not failures; exit 42/43 end the Job at once (retrying cannot help)."""
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [EXIT_THRESHOLD, EXIT_BAD_INPUT],
                },
            },
        ]
    }


def _job(owner: BatchJobRef, step: Step, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": step_job_name(owner.name, step, owner.uid),
            "namespace": owner.namespace,
            "labels": job_labels(owner),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


def _score_args(settings: BatchSettings, model: ModelFacts) -> list[str]:
    """Arguments that enter the scorer's settings digest: `work` and `score` must agree."""
    args = ["--model-digest", model.digest, "--output-format", settings.output.format]
    if model.framework:
        args += ["--framework", model.framework]
    if settings.entrypoint:
        args += ["--entrypoint", settings.entrypoint]
    return args


def build_plan_job(
    owner: BatchJobRef,
    *,
    input_uri: str,
    input_format: str,
    output: str,
    settings: BatchSettings,
    model: ModelFacts,
    config: OperatorConfig,
    resume: bool = False,
) -> dict[str, Any]:
    """One pod: `batch plan` lists the input; for resumeFrom, `batch work` writes the work list
    over the source's plan instead (the input is never listed twice, §6)."""
    if resume:
        step_args = ["work", "--output", output, "--job", owner.name, *_score_args(settings, model)]
    else:
        step_args = [
            "plan",
            "--input",
            input_uri,
            "--output",
            output,
            "--mini-batch-size",
            settings.mini_batch_size,
            "--format",
            input_format,
        ]
    container = _container("plan", [], settings, config)
    container["command"] = ["python", "-m", "mlkube_serving", "batch", *step_args]
    claims = _claims([(input_uri, True), (output, False)])
    template = _pod_template(owner, "plan", [container], claims, config)
    return _job(
        owner,
        "plan",
        {"backoffLimit": PLAN_BACKOFF, "podFailurePolicy": _failure_policy(), "template": template},
    )


def build_score_job(
    owner: BatchJobRef,
    *,
    output: str,
    shape: ScoreShape,
    settings: BatchSettings,
    model: ModelFacts,
    config: OperatorConfig,
    suspend: bool = False,
) -> dict[str, Any]:
    """The Indexed Job: index i scores shard i of the plan (or of the resume work list)."""
    args = [
        "--output",
        output,
        "--model",
        c.MODEL_DIR,
        "--indexes",
        str(shape.indexes),
        "--plan-digest",
        shape.plan_digest,
        "--concurrency",
        str(settings.concurrency),
        "--timeout",
        str(settings.timeout_seconds),
        "--max-retries",
        str(settings.max_retries),
        "--error-threshold",
        str(settings.error_threshold),
        *_score_args(settings, model),
    ]
    if shape.work:
        args += ["--work", shape.work]
    container = _container("score", args, settings, config, sized=True)
    container["volumeMounts"].append(
        {"name": MODEL_VOLUME, "mountPath": c.MODEL_DIR, "readOnly": True}
    )
    init = initializer_container(
        name="storage-initializer",
        uri=model.uri,
        digest=model.digest,
        volume=MODEL_VOLUME,
        dest=c.MODEL_DIR,
        config=config,
        resources=settings.resources,
    )
    claims = _claims([(model.uri, True), (output, False)])
    template = _pod_template(
        owner,
        "score",
        [container],
        claims,
        config,
        init=[init],
        model_limit=model_volume_limit(model),
    )
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": shape.indexes,
        "parallelism": max(1, min(settings.instance_count, shape.indexes)),
        "backoffLimitPerIndex": settings.max_retries,
        "podFailurePolicy": _failure_policy(),
        "suspend": suspend,
        "template": template,
    }
    return _job(owner, "score", spec)


def build_merge_job(
    owner: BatchJobRef, *, output: str, settings: BatchSettings, config: OperatorConfig
) -> dict[str, Any]:
    """One pod: merge the verified parts into `fileName` and write the manifest."""
    out = settings.output
    args = [
        "--output",
        output,
        "--file-name",
        out.file_name,
        "--output-format",
        out.format,
        "--action",
        out.action,
    ]
    container = _container("merge", args, settings, config)
    template = _pod_template(owner, "merge", [container], _claims([(output, False)]), config)
    return _job(
        owner,
        "merge",
        {"backoffLimit": PLAN_BACKOFF, "podFailurePolicy": _failure_policy(), "template": template},
    )
