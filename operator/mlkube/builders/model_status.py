"""The Model's status from the outcome of artifact verification.

Built as `ModelStatus` so a status the CRD would refuse fails here, in a unit test, not as a
422 from the API server on every write; messages are bounded first (`bound_message`), so a
100 KB storage error still makes a valid status. Besides Ready, kstatus's Reconciling (verifying)
and Stalled (failed for good) let Flux and Helm 4 `--wait` see both. Pure: the clock comes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlkube.api.common import bound_message
from mlkube.api.model import ModelStatus, VerifiedArtifact
from mlkube.builders.status_conditions import condition_models
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.kstatus import kstatus_conditions


@dataclass(frozen=True)
class Verification:
    """What verifying the artifact found: facts on success, an error message on failure."""

    digest: str | None = None
    size: int | None = None
    file_count: int | None = None
    error: str | None = None
    reason: str = "Verified"


def build_model_status(
    *,
    generation: int,
    verification: Verification,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """Status after verifying generation `generation`: phase, artifact facts, Ready condition."""
    previous = previous or {}
    ok = verification.error is None
    message = bound_message("artifact verified" if ok else (verification.error or ""))
    conditions = set_condition(
        previous.get("conditions"),
        type_="Ready",
        status=ok,
        reason=verification.reason,
        message=message,
        generation=generation,
        now=now,
    )
    # A failed verdict is about the artifact itself (transient errors retry): a human fixes it.
    conditions = kstatus_conditions(
        conditions, state="done" if ok else "stalled", reason=verification.reason,
        message=message, generation=generation, now=now,
    )  # fmt: skip
    facts = {
        "digest": verification.digest,
        "size": verification.size,
        "fileCount": verification.file_count,
        "verifiedAt": now,
    }
    return ModelStatus(
        phase="Ready" if ok else "Failed",
        observed_generation=generation,
        message=message,
        conditions=condition_models(conditions),
        artifact=VerifiedArtifact.model_validate(facts) if ok else None,
    ).to_status()


def build_verifying_status(
    *, generation: int, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """Status while a generation is being verified (Ready=False, Reconciling, reason Verifying)."""
    previous = previous or {}
    conditions = set_condition(
        previous.get("conditions"),
        type_="Ready",
        status=False,
        reason="Verifying",
        message=f"verifying the artifact of generation {generation}",
        generation=generation,
        now=now,
    )
    conditions = kstatus_conditions(
        conditions, state="working", reason="Verifying",
        message=f"verifying the artifact of generation {generation}",
        generation=generation, now=now,
    )  # fmt: skip
    return ModelStatus(phase="Verifying", conditions=condition_models(conditions)).to_status()
