"""Model handler: verify the artifact once, keep status, audit trail and Events current."""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from mlkube.builders.model_audit import build_audit_status, changed_paths
from mlkube.builders.model_status import Verification, build_model_status, build_verifying_status
from mlkube.builders.model_verify import (
    build_verification_job,
    is_pvc,
    job_outcome,
    termination_message,
    verification_from_job,
    verification_job_name,
)
from mlkube.builders.operator_config import (
    artifact_scheme_problem,
    fetch_policy,
    model_store_problem,
)
from mlkube.contract import GROUP, VERSION
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.k8s import ApiError
from mlkube.storage import DigestMismatch, StorageError, compute_digest

# A finished Job whose pod has not reported facts after this long failed to report them.
REPORT_GRACE_SECONDS = 60


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_artifact(spec: kopf.Spec) -> Verification:
    artifact = spec.get("artifact", {})
    uri, expected = artifact.get("uri", ""), artifact.get("digest")
    problem = artifact_scheme_problem(uri, operator_config())
    if problem is not None:
        return Verification(error=problem, reason="ArtifactSchemeNotAllowed")
    try:
        facts = compute_digest(uri, fetch_policy(operator_config()))
    except StorageError as err:  # err.reason: ArtifactTooLarge, ArtifactLocationRefused, ...
        return Verification(error=f"cannot read artifact {uri}: {err}", reason=err.reason)
    if expected and expected != facts.digest:
        mismatch = DigestMismatch(uri, expected, facts.digest)
        return Verification(error=str(mismatch), reason="DigestMismatch")
    return Verification(digest=facts.digest, size=facts.size, file_count=facts.file_count)


def previous_verification(status: dict[str, Any]) -> Verification | None:
    """The artifact is immutable: once verified, later generations reuse the facts."""
    facts = status.get("artifact") or {}
    if status.get("phase") != "Ready" or not facts.get("digest"):
        return None
    return Verification(
        digest=facts["digest"], size=facts.get("size"), file_count=facts.get("fileCount")
    )


@kopf.on.resume(GROUP, VERSION, "models")
@kopf.on.create(GROUP, VERSION, "models")
@kopf.on.update(GROUP, VERSION, "models", field="spec")
def reconcile_model(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    reason: str,
    diff: kopf.Diff,
    **_: Any,
) -> None:
    generation = int(meta.get("generation", 1))
    previous = dict(status)
    if previous.get("observedGeneration") == generation and previous.get("phase") in (
        "Ready",
        "Failed",
    ):
        return  # level already reached (e.g. on operator restart): nothing to redo
    now = now_iso()
    reused = previous_verification(previous)
    changes = ["spec"] if reason == kopf.Reason.CREATE else changed_paths(diff) or ["spec"]
    audit = build_audit_status(
        annotations=dict(meta.get("annotations") or {}), history=previous.get("history"),
        generation=generation, changes=changes, now=now,
    )  # fmt: skip
    # kopf.event, not kopf.info: posting.level (WARNING) filters info but not explicit events.
    if reason == kopf.Reason.CREATE:
        kopf.event(body, type="Normal", reason="Registered",
                   message=f"model {spec.get('modelName')} version {spec.get('version')} "
                           f"registered by {audit['createdBy']}")  # fmt: skip
    uri = str(spec.get("artifact", {}).get("uri", ""))
    refused = model_store_problem(dict(spec), str(meta["namespace"]), operator_config())
    if refused is not None:
        verification = Verification(error=refused, reason="ArtifactLocationRefused")
        finish(body, patch, previous, generation, verification, now, audit, announce=True)
        return
    if reused is None and is_pvc(uri):
        start_job_verification(body, spec, meta, generation)
        patch.status.update({**build_verifying_status(generation=generation, previous=previous,
                                                      now=now), **audit})  # fmt: skip
        return
    verification = reused or verify_artifact(spec)
    finish(body, patch, previous, generation, verification, now, audit, announce=reused is None)


def finish(
    body: kopf.Body,
    patch: kopf.Patch,
    previous: dict[str, Any],
    generation: int,
    verification: Verification,
    now: str,
    audit: dict[str, Any],
    *,
    announce: bool,
) -> None:
    """Write the verified (or failed) status and announce the outcome once."""
    new_status = build_model_status(
        generation=generation, verification=verification, previous=previous, now=now
    )
    if not announce and previous.get("artifact"):
        new_status["artifact"] = previous["artifact"]  # keep the original verifiedAt
    patch.status.update({**new_status, **audit})
    if not announce:
        return
    if verification.error is None:
        kopf.event(body, type="Normal", reason="Verified",
                   message=f"artifact {verification.digest} ({verification.file_count} files, "
                           f"{verification.size} bytes)")  # fmt: skip
    else:
        kopf.event(body, type="Warning", reason=verification.reason, message=verification.error)


def start_job_verification(
    body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, generation: int
) -> None:
    """Create the verification Job once; an existing one (resume, retry) is left to finish."""
    job = build_verification_job(
        model=meta["name"], namespace=str(meta["namespace"]), uid=str(meta["uid"]),
        generation=generation, uri=str(spec["artifact"]["uri"]),
        digest=spec["artifact"].get("digest"), config=operator_config(),
    )  # fmt: skip
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    try:
        if kube().get("batch/v1", "Job", name, namespace) is not None:
            return
        kube().apply(job)
    except ApiError as err:
        raise kopf.TemporaryError(f"cannot start verification Job {name}: {err}", delay=10) from err
    kopf.event(body, type="Normal", reason="Verifying",
               message=f"verifying {spec['artifact']['uri']} in Job {name}")  # fmt: skip


def _verifying(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") == "Verifying"


@kopf.timer(GROUP, VERSION, "models", interval=2.0, when=_verifying)
def poll_verification_job(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    """Read the outcome of a pvc:// verification Job into the Model's status."""
    generation = int(meta.get("generation", 1))
    namespace, name = str(meta["namespace"]), verification_job_name(meta["name"], generation)
    job = kube().get("batch/v1", "Job", name, namespace)
    if job is None:
        start_job_verification(body, spec, meta, generation)  # deleted under us: run it again
        return
    outcome = job_outcome(job)
    if outcome is None:
        return
    pods = kube().list("v1", "Pod", namespace, label_selector=f"job-name={name}")
    message = next((m for p in pods if (m := termination_message(p))), None)
    verification = verification_from_job(outcome, message)
    if verification is None:
        finished = _seconds_since(job.get("status", {}).get("completionTime"))
        if finished < REPORT_GRACE_SECONDS:
            return
        verification = Verification(error=f"Job {name} finished without reporting facts",
                                    reason="ArtifactUnreadable")  # fmt: skip
    expected = spec["artifact"].get("digest")
    if verification.error is None and expected and expected != verification.digest:
        mismatch = DigestMismatch(str(spec["artifact"]["uri"]), expected, str(verification.digest))
        verification = Verification(error=str(mismatch), reason="DigestMismatch")
    previous = dict(status)
    finish(body, patch, previous, generation, verification, now_iso(),
           {k: previous[k] for k in ("history", "createdBy", "lastModifiedBy") if k in previous},
           announce=True)  # fmt: skip


def _seconds_since(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()
