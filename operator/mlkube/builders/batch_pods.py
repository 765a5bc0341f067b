"""Pieces of a BatchJob's pods: names, labels, the `scorer` container, volumes, failure policy.

Contract C1 of issue 11 (docs/batch-endpoints.md §3): every pod runs the serving image as
`python -m mlkube_serving batch <step>` in a container named `scorer`, restricted profile, no
API credentials, storage credentials only from the storage Secret, pvc:// claims mounted
under /mnt/pvc (read-only unless the step writes there), the operator's batch pod annotations
merged in. `batch_job` assembles the three Jobs from these.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from mlkube import contract as c
from mlkube.builders.batch_settings import BatchSettings
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
from mlkube.builders.storage_init import pvc_claim

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


def claims_of(uris: list[tuple[str, bool]]) -> dict[str, bool]:
    """pvc claims of the URIs -> read-only (a claim written anywhere is mounted read-write)."""
    claims: dict[str, bool] = {}
    for uri, read_only in uris:
        claim = pvc_claim(uri)
        if claim:
            claims[claim] = claims.get(claim, True) and read_only
    return claims


def scorer_container(
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


def pod_template(
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


def failure_policy() -> dict[str, Any]:
    """Evictions are not failures; exit 42/43 end the Job at once (retrying cannot help)."""
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
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
