"""The Pipeline's status: conditions, run counts, schedule and trigger bookkeeping (pure).

A Pipeline runs nothing itself, so Ready means what a run or a trigger needs from it: the spec
is valid and what it names resolves (the onDrift endpoints and deployments with drift
monitoring, the Models, endpoints and BatchEndpoints its steps use, an artifact store). Every
such problem needs a human (or another object to appear), so kstatus sees `Stalled=True` with
the message naming it (docs/status.md); `Reconciling` is never True: a Pipeline has nothing
to converge. When the missing object appears, the next pass (its watch event, or the resync)
makes the Pipeline Ready again. Built as `PipelineStatus`, so a status the CRD would refuse
fails here; messages are bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlkube.api.common import bound_message
from mlkube.api.pipeline import PipelineStatus
from mlkube.api.pipeline_triggers import PipelineScheduleStatus, PipelineTriggerStatus
from mlkube.builders.pipeline_trigger_run import RunFacts
from mlkube.builders.status_conditions import condition_models
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.kstatus import kstatus_conditions

_SCHEDULE_FIELDS = frozenset(f.alias or n for n, f in PipelineScheduleStatus.model_fields.items())
_TRIGGER_FIELDS = frozenset(f.alias or n for n, f in PipelineTriggerStatus.model_fields.items())


@dataclass(frozen=True)
class Problem:
    """Why the pipeline is not Ready: a reason (CamelCase) and a message naming the object."""

    reason: str
    message: str


def run_counts(runs: Iterable[RunFacts]) -> dict[str, int]:
    counts = {"active": 0, "succeeded": 0, "failed": 0}
    for run in runs:
        if run.active:
            counts["active"] += 1
        elif run.phase == "Succeeded":
            counts["succeeded"] += 1
        else:
            counts["failed"] += 1
    return counts


def last_run(runs: Sequence[RunFacts]) -> str | None:
    newest = max(runs, key=lambda r: (r.created, r.name), default=None)
    return newest.name if newest else None


def _summary(steps: int, schedules: int, triggers: int) -> str:
    def n(count: int, noun: str) -> str:
        return f"{count} {noun}{'s' if count != 1 else ''}"

    return ", ".join([n(steps, "step"), n(schedules, "schedule"), n(triggers, "trigger")])


def build_pipeline_status(
    *,
    generation: int,
    problems: Sequence[Problem],
    shape: tuple[int, int, int] | None,  # (steps, schedules, triggers); None: invalid spec
    runs: Sequence[RunFacts],
    schedules: Sequence[Mapping[str, Any]],
    triggers: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status; schedule and trigger documents are kept to their status fields."""
    conditions = list((previous or {}).get("conditions") or [])
    if problems:
        message = bound_message("; ".join(p.message for p in problems))
        reason = problems[0].reason
        state = "stalled"
        ready = False
    else:
        message = f"valid: {_summary(*shape)}" if shape else "valid"
        reason, state, ready = "Valid", "done", True
    conditions = set_condition(
        conditions, type_="Ready", status=ready, reason=reason, message=message,
        generation=generation, now=now,
    )  # fmt: skip
    conditions = kstatus_conditions(
        conditions, state=state, reason=reason, message=message, generation=generation, now=now
    )
    return PipelineStatus.model_validate(
        {
            "observedGeneration": generation,
            "conditions": [c.model_dump(by_alias=True) for c in condition_models(conditions)],
            "lastRun": last_run(runs),
            "runs": run_counts(runs),
            "schedules": [{k: v for k, v in s.items() if k in _SCHEDULE_FIELDS} for s in schedules],
            "triggers": [{k: v for k, v in t.items() if k in _TRIGGER_FIELDS} for t in triggers],
            "message": message,
        }
    ).to_status()
