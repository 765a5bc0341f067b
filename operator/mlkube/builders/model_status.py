"""The Model's status from the outcome of artifact verification.

Pure: the handler passes the clock in, so tests compare literal dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlkube.reconcile.conditions import set_condition


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
    previous: dict[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """Status after verifying generation `generation`: phase, artifact facts, Ready condition."""
    previous = previous or {}
    ok = verification.error is None
    message = "artifact verified" if ok else (verification.error or "")
    status: dict[str, Any] = {
        "phase": "Ready" if ok else "Failed",
        "observedGeneration": generation,
        "message": message,
        "conditions": set_condition(
            previous.get("conditions"),
            type_="Ready",
            status=ok,
            reason=verification.reason,
            message=message,
            generation=generation,
            now=now,
        ),
    }
    if ok:
        status["artifact"] = {
            "digest": verification.digest,
            "size": verification.size,
            "fileCount": verification.file_count,
            "verifiedAt": now,
        }
    return status


def build_verifying_status(
    *, generation: int, previous: dict[str, Any] | None, now: str
) -> dict[str, Any]:
    """Status while a generation is being verified (Ready=False, reason Verifying)."""
    previous = previous or {}
    return {
        "phase": "Verifying",
        "conditions": set_condition(
            previous.get("conditions"),
            type_="Ready",
            status=False,
            reason="Verifying",
            message=f"verifying the artifact of generation {generation}",
            generation=generation,
            now=now,
        ),
    }
