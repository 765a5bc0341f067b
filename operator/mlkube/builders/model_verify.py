"""Verification of `pvc://` artifacts by a short Job.

The operator reads s3, gs, http(s) and file artifacts itself (one streaming pass, no pod to
schedule). A PersistentVolumeClaim can only be read from a pod that mounts it, so for `pvc://`
the operator runs the storage initializer in a Job with the claim mounted read-only; the Job
reports the artifact facts as its termination message (JSON), which the operator reads back.
"""

from __future__ import annotations

import json
from typing import Any

from mlkube import contract as c
from mlkube.builders.model_status import Verification
from mlkube.builders.names import dns_name, label_value
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import (
    container_security_context,
    restricted_pod_spec,
    tmp_mount,
    tmp_volume,
)

LABEL_VERIFIES = "mlkube.dev/verifies"
DEADLINE_SECONDS = 900


def is_pvc(uri: str) -> bool:
    return uri.startswith("pvc://")


def claim_of(uri: str) -> str:
    return uri.removeprefix("pvc://").split("/", 1)[0]


def verification_job_name(model: str, generation: int) -> str:
    return dns_name(model, "verify", f"g{generation}")


def build_verification_job(
    *,
    model: str,
    namespace: str,
    uid: str,
    generation: int,
    uri: str,
    digest: str | None,
    config: OperatorConfig,
) -> dict[str, Any]:
    """A Job that computes the digest of a pvc:// artifact (and compares it, if one is given)."""
    claim = claim_of(uri)
    args = ["--uri", uri] + (["--digest", digest] if digest else [])
    container = {
        "name": "verify",
        "image": config.serving_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mlkube_serving", "storage-initializer"],
        "args": args,
        "env": [{"name": c.ENV_PVC_ROOT, "value": c.PVC_ROOT}],
        "securityContext": container_security_context(config.run_as_user),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"memory": "512Mi"}},
        "volumeMounts": [
            {"name": "artifact", "mountPath": f"{c.PVC_ROOT}/{claim}", "readOnly": True},
            tmp_mount(),
        ],
    }  # fmt: skip
    pod = restricted_pod_spec(
        run_as_user=config.run_as_user,
        containers=[container],
        volumes=[
            {"name": "artifact",
             "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
            tmp_volume(),
        ],
    )  # fmt: skip
    pod["restartPolicy"] = "Never"
    labels = {c.LABEL_MANAGED_BY: c.MANAGED_BY, LABEL_VERIFIES: label_value(model)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": verification_job_name(model, generation),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [{"apiVersion": c.API_VERSION, "kind": c.KIND_MODEL, "name": model,
                                 "uid": uid, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }  # fmt: skip


def job_outcome(job: dict[str, Any]) -> str | None:
    """'Complete', 'Failed' or None while the Job runs."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def termination_message(pod: dict[str, Any]) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"]).strip()
    return None


def verification_from_job(outcome: str, message: str | None) -> Verification | None:
    """The result a finished Job reported; None when the facts have not been reported yet."""
    if outcome == "Failed":
        detail = (message or "no message").strip().splitlines()[-1]
        reason = "DigestMismatch" if "digest mismatch" in detail else "ArtifactUnreadable"
        return Verification(error=f"verification job failed: {detail}", reason=reason)
    if not message:
        return None
    try:
        facts = json.loads(message.splitlines()[-1])
        return Verification(digest=str(facts["digest"]), size=int(facts["size"]),
                            file_count=int(facts["fileCount"]))  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return Verification(error=f"verification job reported no facts: {message[:200]}",
                            reason="ArtifactUnreadable")  # fmt: skip
