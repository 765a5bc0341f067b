"""Model handler: verify the artifact once per generation and report it in status and Events."""

from __future__ import annotations

import datetime
from typing import Any

import kopf

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


@kopf.on.resume(GROUP, VERSION, "models")
@kopf.on.create(GROUP, VERSION, "models")
@kopf.on.update(GROUP, VERSION, "models", field="spec")
def reconcile_model(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta,
    patch: kopf.Patch, **_: Any,
) -> None:
    generation = int(meta.get("generation", 1))
    if status.get("observedGeneration") == generation and status.get("phase") in ("Ready",
                                                                                   "Failed"):
        return  # level already reached (e.g. on operator restart): nothing to redo
    verification = verify_artifact(spec)
    new_status = build_model_status(
        generation=generation, verification=verification, previous=dict(status), now=now_iso()
    )
    patch.status.update(new_status)
    if verification.error is None:
        # kopf.event, not kopf.info: posting.level (WARNING) filters info but not explicit events.
        kopf.event(body, type="Normal", reason="Verified",
                  message=f"artifact {verification.digest} ({verification.file_count} files, "
                          f"{verification.size} bytes)")
    else:
        kopf.event(body, type="Warning", reason=verification.reason, message=verification.error)
