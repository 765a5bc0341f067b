"""The endpoint's conditions while a rollout runs or after it aborted (pure).

Merged over what `endpoint_status` decides from the workloads (docs/rollouts.md §4): a running
rollout is `Progressing` (reason RolloutProgressing / RolloutPaused, which kstatus reads as
`Reconciling`); an aborted one is `Degraded` (reason RolloutAborted, which `with_stalled`
mirrors into `Stalled`) with the failing metric and "spec wants X, running Y", because an abort
never edits spec and GitOps tools must see that the cluster does not run what they applied.
`Ready` stays about serving. Workload failures (Degraded already True) win over a rollout's
Progressing; a rollout of another revision (the loop has not picked the new spec up yet) says
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlkube.api.common import bound_message
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.reconcile.conditions import Condition, get_condition, set_condition
from mlkube.reconcile.rollout_effective import wants_running

PROGRESSING_REASONS = {"Progressing": "RolloutProgressing", "Paused": "RolloutPaused"}
ABORTED = "RolloutAborted"


def abort_message(rollout: Mapping[str, Any]) -> str:
    """Why it aborted: the plan's message, else one built from status.rollout.abort."""
    abort = rollout.get("abort") or {}
    if abort.get("message"):
        return str(abort["message"])
    metric = abort.get("metric")
    if metric:
        return (
            f"rollout aborted: metric {metric} measured {abort.get('value')}, "
            f"condition {abort.get('condition')}"
        )
    return f"rollout aborted: {rollout.get('message') or rollout.get('reason') or 'aborted'}"


def with_rollout_conditions(
    conditions: list[Condition],
    spec: OnlineEndpointSpec,
    effective: OnlineEndpointSpec,
    rollout: Mapping[str, Any] | None,
    current: bool,
    generation: int,
    now: str,
) -> list[Condition]:
    """`conditions` with the rollout's say; `current`: status.rollout is of the spec's revision."""
    if not rollout or not current:
        return conditions
    phase = str(rollout.get("phase") or "")
    degraded = (get_condition(conditions, "Degraded") or {}).get("status") == "True"
    if phase in PROGRESSING_REASONS and not degraded:
        message = str(rollout.get("message") or f"rollout {phase.lower()}")
        return set_condition(
            conditions,
            type_="Progressing",
            status=True,
            reason=PROGRESSING_REASONS[phase],
            message=bound_message(message),
            generation=generation,
            now=now,
        )
    if phase == "Aborted":
        message = abort_message(rollout)
        if "spec wants" not in message:
            message = f"{message}; {wants_running(spec, effective)}"
        for type_, status in (("Degraded", True), ("Progressing", False)):
            conditions = set_condition(
                conditions,
                type_=type_,
                status=status,
                reason=ABORTED,
                message=bound_message(message),
                generation=generation,
                now=now,
            )
    return conditions
