"""The Model's status while a transient storage error is being retried (pure).

A store that is down, throttling or unreachable says nothing about the artifact, so the Model
stays Pending (Ready=False, reason Retrying) instead of failing for good; only a verdict about
the artifact itself (not found, digest mismatch, unsupported scheme) fails it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.api.common import bound_message
from mlkube.api.model import ModelStatus
from mlkube.builders.status_conditions import condition_models
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.kstatus import kstatus_conditions

RETRYING: Final = "Retrying"
FIRST_DELAY: Final = 10.0
MAX_DELAY: Final = 300.0


def retry_delay(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: 10, 20, 40, ... capped at five minutes."""
    return min(FIRST_DELAY * float(2 ** min(attempt, 16)), MAX_DELAY)


def build_retrying_status(
    *, generation: int, error: str, attempt: int, delay: float, previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:  # fmt: skip
    """Phase Pending, Ready=False/Retrying with the error and when the next attempt runs."""
    message = bound_message(f"{error}; attempt {attempt + 1} failed, retrying in {delay:.0f}s")
    conditions = set_condition(
        (previous or {}).get("conditions"),
        type_="Ready",
        status=False,
        reason=RETRYING,
        message=message,
        generation=generation,
        now=now,
    )
    conditions = kstatus_conditions(
        conditions, state="working", reason=RETRYING, message=message,
        generation=generation, now=now,
    )  # fmt: skip
    return ModelStatus(
        phase="Pending", message=message, conditions=condition_models(conditions)
    ).to_status()
