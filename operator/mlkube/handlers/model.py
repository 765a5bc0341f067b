"""Model handler: verify the artifact once, keep status, audit trail and Events current."""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from mlkube.builders.model_audit import build_audit_status, changed_paths
from mlkube.builders.model_status import Verification, build_model_status
from mlkube.contract import GROUP, VERSION
from mlkube.storage import DigestMismatch, StorageError, compute_digest


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_artifact(spec: kopf.Spec) -> Verification:
    artifact = spec.get("artifact", {})
    uri, expected = artifact.get("uri", ""), artifact.get("digest")
    try:
        facts = compute_digest(uri)
    except StorageError as err:
        return Verification(error=f"cannot read artifact {uri}: {err}", reason="ArtifactUnreadable")
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
    verification = reused or verify_artifact(spec)
    new_status = build_model_status(
        generation=generation, verification=verification, previous=previous, now=now
    )
    if reused is not None:
        new_status["artifact"] = previous["artifact"]  # keep the original verifiedAt
    changes = ["spec"] if reason == kopf.Reason.CREATE else changed_paths(diff) or ["spec"]
    new_status.update(build_audit_status(
        annotations=dict(meta.get("annotations") or {}), history=previous.get("history"),
        generation=generation, changes=changes, now=now,
    ))  # fmt: skip
    patch.status.update(new_status)
    # kopf.event, not kopf.info: posting.level (WARNING) filters info but not explicit events.
    if reason == kopf.Reason.CREATE:
        kopf.event(body, type="Normal", reason="Registered",
                   message=f"model {spec.get('modelName')} version {spec.get('version')} "
                           f"registered by {new_status['createdBy']}")  # fmt: skip
    if reused is not None:
        return
    if verification.error is None:
        kopf.event(body, type="Normal", reason="Verified",
                   message=f"artifact {verification.digest} ({verification.file_count} files, "
                           f"{verification.size} bytes)")  # fmt: skip
    else:
        kopf.event(body, type="Warning", reason=verification.reason, message=verification.error)
