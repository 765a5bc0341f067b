"""The BatchEndpoint's status: conditions, the resolved default deployment, schedule bookkeeping.

A batch endpoint runs nothing itself, so Ready means what a job needs from it: every
deployment's Model exists and is Ready (verified), and every schedule can run. kstatus reads
`Reconciling` (a Model still verifying) and `Stalled` (mirrored from `Degraded` by
reconcile/kstatus.py): a missing or failed Model, an invalid spec or schedule need a human,
and the message names what is wrong. Built as `BatchEndpointStatus`, so a status the CRD would
refuse fails here; messages are bounded. Pure: Model problems and the clock are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mlkube.api.batch import BatchEndpointSpec, BatchEndpointStatus, ScheduleStatus
from mlkube.api.common import bound_message
from mlkube.builders.status_conditions import condition_models
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.kstatus import with_stalled

# Problems that wait on their own (a Model being verified); every other one needs a human.
TRANSIENT: Final = frozenset({"ModelNotReady"})


@dataclass(frozen=True)
class Problem:
    """Why the endpoint is not Ready: a reason (CamelCase) and a message naming the object."""

    reason: str
    message: str

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT


def _verdicts(spec: BatchEndpointSpec | None, problems: Sequence[Problem]) -> dict[str, Any]:
    """Condition type -> (status, reason, message)."""
    if problems:
        message = "; ".join(p.message for p in problems)
        stuck = [p for p in problems if not p.transient]
        first = stuck[0] if stuck else problems[0]
        return {
            "Ready": (False, first.reason, message),
            "Reconciling": (not stuck, first.reason if not stuck else "Stalled", message),
            "Degraded": (bool(stuck), first.reason if stuck else "AsExpected", message),
        }
    count = len(spec.deployments) if spec else 0
    schedules = len(spec.schedules) if spec else 0
    message = f"{count} deployment{'s' if count != 1 else ''} with Ready Models" + (
        f", {schedules} schedule{'s' if schedules != 1 else ''}" if schedules else ""
    )
    return {
        "Ready": (True, "ModelsReady", message),
        "Reconciling": (False, "Complete", ""),
        "Degraded": (False, "AsExpected", ""),
    }


def build_batch_endpoint_status(
    *,
    spec: BatchEndpointSpec | None,
    generation: int,
    problems: Sequence[Problem],
    schedules: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status; `schedules` are ScheduleStatus documents in spec order."""
    conditions = list((previous or {}).get("conditions") or [])
    for type_, (ok, reason, message) in _verdicts(spec, problems).items():
        conditions = set_condition(
            conditions,
            type_=type_,
            status=ok,
            reason=reason,
            message=bound_message(message),
            generation=generation,
            now=now,
        )
    conditions = with_stalled(conditions, generation, now)
    ready = next(c for c in conditions if c.get("type") == "Ready")
    return BatchEndpointStatus(
        observed_generation=generation,
        conditions=condition_models(conditions),
        default_deployment=spec.resolved_default() if spec else None,
        schedules=[ScheduleStatus.model_validate(s) for s in schedules],
        message=bound_message(str(ready.get("message") or "")) or None,
    ).to_status()
