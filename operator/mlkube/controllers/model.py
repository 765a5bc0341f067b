"""The Model controller: verify the artifact once, keep status and audit trail current.

Returns a `ModelOutcome` (status keys to write, Events, a retry) instead of touching Kopf:
the handler writes the status through Kopf's patch, so the diff-base and the status land in
one request. s3/gs/http(s)/file artifacts are hashed in the operator; pvc:// ones in a Job.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.builders.model_audit import build_audit_status
from mlkube.builders.model_retry import RETRYING, build_retrying_status, retry_delay
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
    OperatorConfig,
    artifact_scheme_problem,
    fetch_policy,
    model_store_problem,
)
from mlkube.contract import FIELD_MANAGER
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import ApiError, Kube
from mlkube.storage import DigestMismatch, StorageError, compute_digest

# A finished Job whose pod has not reported facts after this long failed to report them.
REPORT_GRACE_SECONDS: Final = 60
JOB_ERROR_DELAY: Final = 10.0
AUDIT_KEYS: Final = ("history", "createdBy", "lastModifiedBy")

Event = tuple[str, str, str]  # (type, reason, message)


class VerificationJobError(ControllerError):
    """The pvc:// verification Job could not be read or started."""


@dataclass(frozen=True)
class ModelOutcome:
    """What the handler does next: merge `status` into the Model's status, post `events`,
    and when `retry_delay` is set, run again after that many seconds."""

    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    retry_message: str | None = None
    retry_delay: float | None = None


@dataclass(frozen=True)
class Unreachable:
    """Verification could not run for a reason that may pass (store down, timeout, 5xx)."""

    message: str


def verify_artifact(spec: Mapping[str, Any], config: OperatorConfig) -> Verification | Unreachable:
    artifact = spec.get("artifact", {})
    uri, expected = artifact.get("uri", ""), artifact.get("digest")
    problem = artifact_scheme_problem(uri, config)
    if problem is not None:
        return Verification(error=problem, reason="ArtifactSchemeNotAllowed")
    try:
        facts = compute_digest(uri, fetch_policy(config))
    except StorageError as err:  # err.reason: ArtifactTooLarge, ArtifactLocationRefused, ...
        if not err.permanent:  # network, throttling, a slow store: may pass, try again later
            return Unreachable(f"cannot read artifact {uri}: {err}")
        return Verification(error=f"cannot read artifact {uri}: {err}", reason=err.reason)
    if expected and expected != facts.digest:
        mismatch = DigestMismatch(uri, expected, facts.digest)
        return Verification(error=str(mismatch), reason="DigestMismatch")
    return Verification(digest=facts.digest, size=facts.size, file_count=facts.file_count)


def previous_verification(status: Mapping[str, Any]) -> Verification | None:
    """The artifact is immutable: once verified, later generations reuse the facts."""
    facts = status.get("artifact") or {}
    if status.get("phase") != "Ready" or not facts.get("digest"):
        return None
    return Verification(
        digest=facts["digest"], size=facts.get("size"), file_count=facts.get("fileCount")
    )


def reconcile(
    kube: Kube,
    config: OperatorConfig,
    obj: Mapping[str, Any],
    *,
    created: bool,
    changes: list[str],
    now: str,
    attempt: int = 0,
) -> ModelOutcome:
    """One pass over a Model's spec: verify (or reuse) the artifact and build the status.

    `attempt` counts earlier passes of this change that asked for a retry (Kopf's `retry`).
    """
    meta, spec = obj["metadata"], obj.get("spec") or {}
    previous = dict(obj.get("status") or {})
    generation = int(meta.get("generation", 1))
    if previous.get("observedGeneration") == generation and previous.get("phase") in (
        "Ready",
        "Failed",
    ):
        return ModelOutcome()  # level already reached (e.g. on operator restart): nothing to redo
    reused = previous_verification(previous)
    audit = build_audit_status(
        annotations=dict(meta.get("annotations") or {}), history=previous.get("history"),
        generation=generation, changes=changes, now=now,
    )  # fmt: skip
    events: list[Event] = []
    if created and attempt == 0:
        events.append(("Normal", "Registered",
                       f"model {spec.get('modelName')} version {spec.get('version')} "
                       f"registered by {audit['createdBy']}"))  # fmt: skip
    uri = str(spec.get("artifact", {}).get("uri", ""))
    refused = model_store_problem(dict(spec), str(meta["namespace"]), config)
    if refused is not None:
        verdict = Verification(error=refused, reason="ArtifactLocationRefused")
        done = finish(previous, generation, verdict, now, audit, announce=True)
        return ModelOutcome(status=done.status, events=events + done.events)
    if reused is None and is_pvc(uri):
        events += start_job_verification(kube, config, obj, generation)
        status = build_verifying_status(generation=generation, previous=previous, now=now)
        return ModelOutcome(status={**status, **audit}, events=events)
    verification = reused or verify_artifact(spec, config)
    if isinstance(verification, Unreachable):
        delay = retry_delay(attempt)
        status = build_retrying_status(
            generation=generation, error=verification.message, attempt=attempt, delay=delay,
            previous=previous, now=now,
        )  # fmt: skip
        return ModelOutcome(
            status={**status, **audit},
            events=[*events, ("Warning", RETRYING, status["message"])],
            retry_message=verification.message,
            retry_delay=delay,
        )
    done = finish(previous, generation, verification, now, audit, announce=reused is None)
    return ModelOutcome(status=done.status, events=events + done.events)


def finish(
    previous: Mapping[str, Any],
    generation: int,
    verification: Verification,
    now: str,
    audit: Mapping[str, Any],
    *,
    announce: bool,
) -> ModelOutcome:
    """The verified (or failed) status, and the outcome announced once."""
    new_status = build_model_status(
        generation=generation, verification=verification, previous=dict(previous), now=now
    )
    if not announce and previous.get("artifact"):
        new_status["artifact"] = previous["artifact"]  # keep the original verifiedAt
    status = {**new_status, **audit}
    if not announce:
        return ModelOutcome(status=status)
    if verification.error is None:
        event = ("Normal", "Verified",
                 f"artifact {verification.digest} ({verification.file_count} files, "
                 f"{verification.size} bytes)")  # fmt: skip
    else:
        event = ("Warning", verification.reason, verification.error)
    return ModelOutcome(status=status, events=[event])


def start_job_verification(
    kube: Kube, config: OperatorConfig, obj: Mapping[str, Any], generation: int
) -> list[Event]:
    """Create the verification Job once; an existing one (resume, retry) is left to finish."""
    meta, spec = obj["metadata"], obj["spec"]
    job = build_verification_job(
        model=meta["name"], namespace=str(meta["namespace"]), uid=str(meta["uid"]),
        generation=generation, uri=str(spec["artifact"]["uri"]),
        digest=spec["artifact"].get("digest"), config=config,
    )  # fmt: skip
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    try:
        existing = kube.get("batch/v1", "Job", name, namespace)
        if existing is None:
            kube.create(job, field_manager=FIELD_MANAGER)  # 409: someone holds the name now
    except ApiError as err:
        raise VerificationJobError(f"cannot start verification Job {name}: {err}") from err
    if existing is not None:
        check_job_owner(existing, obj)
        return []
    return [("Normal", "Verifying", f"verifying {spec['artifact']['uri']} in Job {name}")]


def check_job_owner(job: Mapping[str, Any], obj: Mapping[str, Any]) -> None:
    """The Job at the verification name must be controlled by this very Model (uid)."""
    refs = job["metadata"].get("ownerReferences") or []
    uid = obj["metadata"]["uid"]
    if not any(r.get("controller") and r.get("uid") == uid for r in refs):
        name = job["metadata"]["name"]
        raise VerificationJobError(
            f"Job {name} exists and is not controlled by this Model: mlkube neither reads "
            "nor replaces it; delete it to let verification run"
        )


def poll_verification_job(
    kube: Kube, config: OperatorConfig, obj: Mapping[str, Any], now: datetime.datetime
) -> ModelOutcome:
    """Read the outcome of a pvc:// verification Job into the Model's status."""
    meta, spec = obj["metadata"], obj["spec"]
    generation = int(meta.get("generation", 1))
    namespace, name = str(meta["namespace"]), verification_job_name(meta["name"], generation)
    job = kube.get("batch/v1", "Job", name, namespace)
    if job is None:  # deleted under us: run it again
        return ModelOutcome(events=start_job_verification(kube, config, obj, generation))
    check_job_owner(job, obj)  # facts from a Job we did not create verify nothing
    outcome = job_outcome(job)
    if outcome is None:
        return ModelOutcome()
    pods = kube.list("v1", "Pod", namespace, label_selector=f"job-name={name}")
    message = next((m for p in pods if (m := termination_message(p))), None)
    verification = verification_from_job(outcome, message)
    if verification is None:
        finished = _seconds_since(job.get("status", {}).get("completionTime"), now)
        if finished < REPORT_GRACE_SECONDS:
            return ModelOutcome()
        verification = Verification(error=f"Job {name} finished without reporting facts",
                                    reason="ArtifactUnreadable")  # fmt: skip
    expected = spec["artifact"].get("digest")
    if verification.error is None and expected and expected != verification.digest:
        mismatch = DigestMismatch(str(spec["artifact"]["uri"]), expected, str(verification.digest))
        verification = Verification(error=str(mismatch), reason="DigestMismatch")
    previous = dict(obj.get("status") or {})
    audit = {k: previous[k] for k in AUDIT_KEYS if k in previous}
    return finish(previous, generation, verification, format_time(now), audit, announce=True)


def format_time(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_since(timestamp: str | None, now: datetime.datetime) -> float:
    if not timestamp:
        return 0.0
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (now - then).total_seconds()
