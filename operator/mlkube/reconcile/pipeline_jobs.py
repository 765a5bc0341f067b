"""A step Job as the run planner sees it (pure): which step, which attempt, how it stands.

The planner (reconcile/pipeline_plan.py) decides from `JobAttempt`s only, so this is the one
place that reads a Job object: the step from the `mlkube.dev/pipeline-step` label, the attempt
from the `mlkube.dev/attempt` annotation, the outcome from the Job's conditions (as the batch
controller reads them: Complete, Failed or FailureTarget), the end time from the finishing
condition (the retry backoff counts from it). A Job being deleted that never finished is a
failed attempt: it will never finish now. A Job without the label or a usable attempt is not a
step Job of ours and is left out.

    job_attempt(job) -> JobAttempt | None
    job_attempts(jobs) -> list[JobAttempt]

The controller adds the Jobs it creates in a pass as `Active` before planning again in the same
pass (a Running step with no Job observed is a failed attempt: its Job is gone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlkube.contract import ANNOTATION_ATTEMPT, LABEL_PIPELINE_STEP
from mlkube.reconcile.batch_job_facts import job_facts
from mlkube.reconcile.pipeline_retry import parse_time

JobState = Literal["Active", "Complete", "Failed"]


@dataclass(frozen=True)
class JobAttempt:
    """One step Job as observed. A Job being deleted that never finished counts as Failed."""

    step: str
    attempt: int
    name: str
    state: JobState
    message: str = ""
    finished_at: dt.datetime | None = None


def _ended(job: Mapping[str, Any]) -> dt.datetime | None:
    status = job.get("status") or {}
    times = [
        parse_time(c.get("lastTransitionTime"))
        for c in status.get("conditions") or []
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "FailureTarget")
    ]
    known = [t for t in times if t is not None]
    return min(known) if known else parse_time(status.get("completionTime"))


def job_attempt(job: Mapping[str, Any]) -> JobAttempt | None:
    """The Job as a JobAttempt, or None when it carries no step label or attempt number."""
    meta = job.get("metadata") or {}
    step = (meta.get("labels") or {}).get(LABEL_PIPELINE_STEP)
    raw = str((meta.get("annotations") or {}).get(ANNOTATION_ATTEMPT, ""))
    if not step or not raw.isdigit() or int(raw) < 1:
        return None
    facts = job_facts(dict(job))
    name = str(meta.get("name", ""))
    if facts.finished == "Complete":
        return JobAttempt(step, int(raw), name, "Complete", "", _ended(job))
    if facts.finished == "Failed":
        why = facts.message or facts.reason or f"Job {name} failed"
        return JobAttempt(step, int(raw), name, "Failed", why, _ended(job))
    if meta.get("deletionTimestamp"):
        ended = parse_time(meta.get("deletionTimestamp"))
        return JobAttempt(step, int(raw), name, "Failed", f"Job {name} was deleted", ended)
    return JobAttempt(step, int(raw), name, "Active")


def job_attempts(jobs: Iterable[Mapping[str, Any]]) -> list[JobAttempt]:
    """Every step Job of `jobs` (already filtered to the run's own) as a JobAttempt."""
    return [a for a in (job_attempt(j) for j in jobs) if a is not None]
