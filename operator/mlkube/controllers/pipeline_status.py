"""The PipelineRun status a pass writes: phase from the steps, kstatus conditions, progress.

Ready on success, Reconciling while running, Stalled on failure or cancel (docs/status.md),
with `lastTransitionTime` moving only on a flip. The whole status goes through the API model
so a field the CRD would refuse fails here, and what is compared with the stored status is
exactly what the API server would store (no needless patches).
"""

from __future__ import annotations

import datetime
from typing import Any

from mlkube.api.pipeline_run import PipelineRunStatus
from mlkube.builders.status_conditions import condition_models
from mlkube.controllers.pipeline_steps import RunContext, stamp
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.pipeline_plan import RunPlan

REASONS = {"Pending": "Pending", "Running": "Running", "Succeeded": "Succeeded",
           "Failed": "StepFailed", "Cancelled": "Cancelled"}  # fmt: skip


def _conditions(
    prev: dict[str, Any], phase: str, message: str, generation: int, now: str
) -> list[Any]:
    conditions = [dict(c) for c in prev.get("conditions") or []]
    for type_, value in (
        ("Ready", phase == "Succeeded"),
        ("Reconciling", phase in ("Pending", "Running")),
        ("Stalled", phase in ("Failed", "Cancelled")),
    ):
        conditions = set_condition(conditions, type_=type_, status=value,
                                   reason=REASONS.get(phase, phase), message=message,
                                   generation=generation, now=now)  # fmt: skip
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True)
            for c in condition_models(conditions)]  # fmt: skip


def compose_status(
    prev: dict[str, Any],
    ctx: RunContext,
    plan: RunPlan,
    generation: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The whole status after a pass: the planner's phase, message, progress and kstatus
    conditions (reconcile/pipeline_outcome.py), the steps as this pass left them."""
    at = stamp(now)
    produced = list(prev.get("producedModels") or [])
    for st in ctx.steps.values():
        for model in st.pop("producedModels", []) or []:
            if model not in produced:
                produced.append(model)
    body: dict[str, Any] = {
        "phase": plan.phase,
        "observedGeneration": generation,
        "conditions": [
            c.model_dump(mode="json", by_alias=True, exclude_none=True)
            for c in condition_models(plan.conditions)
        ],
        "startTime": prev.get("startTime") or at,
        "pipelineDigest": prev.get("pipelineDigest"),
        "parameters": prev.get("parameters") or {},
        "progress": plan.progress,
        "steps": [ctx.steps[s.name] for s in ctx.pipeline.steps],
        "producedModels": produced,
        "message": plan.message[-1024:],
    }
    if plan.phase in ("Succeeded", "Failed", "Cancelled"):
        body["completionTime"] = prev.get("completionTime") or at
    return _normal(body)


def failed_status(
    prev: dict[str, Any], message: str, generation: int, now: datetime.datetime
) -> dict[str, Any]:
    at = stamp(now)
    body = {
        **{k: v for k, v in prev.items() if k in ("pipelineDigest", "parameters", "steps")},
        "phase": "Failed",
        "observedGeneration": generation,
        "conditions": _conditions(prev, "Failed", message, generation, at),
        "startTime": prev.get("startTime") or at,
        "completionTime": prev.get("completionTime") or at,
        "message": message[-1024:],
    }
    return _normal(body)


def _normal(body: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores for `body` (validated, camelCase, no nulls)."""
    clean = {k: v for k, v in body.items() if v is not None}
    return PipelineRunStatus.model_validate(clean).to_status()
