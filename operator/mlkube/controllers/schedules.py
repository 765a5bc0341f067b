"""One evaluation of one cron schedule that creates an object per scheduled time: fire, skip or
count missed; cancel for Replace; trim the history. Shared by BatchEndpoint schedules (BatchJobs,
controllers/batch_schedules.py) and Pipeline schedules (PipelineRuns, controllers/
pipeline_schedules.py): both kinds have `spec.cancel` and a `status.phase` ending in Succeeded,
Failed or Cancelled, so one runner serves both. I/O through the `Kube` protocol; every decision
is in reconcile/.

Never double-fire: the object for a scheduled time has one possible name and is created with
POST only, so a 409 means the time already fired (an earlier pass whose status write was lost, a
restarted operator, a second operator). The status is only a cache of what happened.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from mlkube.builders.batch_scheduled_job import owned_by, scheduled_job
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.batch_schedule import (
    ScheduleError,
    Timing,
    format_time,
    parse_time,
    plan_schedule,
)
from mlkube.reconcile.batch_schedule_jobs import (
    ScheduledJob,
    concurrency_decision,
    history_deletions,
)

WARNING: Final = "Warning"
NORMAL: Final = "Normal"


@dataclass(frozen=True)
class Cadence:
    """A schedule's settings, whatever kind declares it."""

    name: str
    cron: str
    time_zone: str
    concurrency_policy: str
    suspend: bool
    deadline_seconds: int
    succeeded_limit: int
    failed_limit: int


class ScheduleFields(Protocol):
    """What every kind's schedule model has (BatchSchedule, PipelineSchedule)."""

    @property
    def name(self) -> str: ...
    @property
    def cron(self) -> str: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def concurrency_policy(self) -> str: ...
    @property
    def suspend(self) -> bool: ...


def cadence(
    schedule: ScheduleFields, *, deadline_seconds: int, succeeded_limit: int, failed_limit: int
) -> Cadence:
    return Cadence(
        name=schedule.name,
        cron=schedule.cron,
        time_zone=schedule.time_zone,
        concurrency_policy=schedule.concurrency_policy,
        suspend=schedule.suspend,
        deadline_seconds=deadline_seconds,
        succeeded_limit=succeeded_limit,
        failed_limit=failed_limit,
    )


@dataclass(frozen=True)
class Target:
    """What a schedule creates and for whom: the objects are `kind`, labelled `selector`,
    controlled by `owner_uid`, named `name(instant)` and built by `build(instant, zone)`
    (ScheduleError when the time cannot be rendered)."""

    api_version: str
    kind: str
    namespace: str
    owner_uid: str
    selector: str
    status_key: str  # the status field naming the last object created ("lastJob", "lastRun")
    name: Callable[[dt.datetime], str]
    build: Callable[[dt.datetime, ZoneInfo], dict[str, Any]]
    describe: Callable[[dict[str, Any]], str] = lambda _body: ""  # detail for the created Event
    kept: str = ""  # what a history deletion leaves behind, for its Event


@dataclass
class ScheduleResult:
    status: dict[str, Any]  # the schedule's status document
    next_time: dt.datetime | None = None
    error: str | None = None  # why the schedule cannot run (shown in conditions)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def _owned(kube: Kube, target: Target) -> list[ScheduledJob]:
    found = kube.list(
        target.api_version, target.kind, target.namespace, label_selector=target.selector
    )
    return [scheduled_job(j) for j in found if owned_by(j, target.owner_uid)]


def run_schedule(
    kube: Kube,
    target: Target,
    schedule: Cadence,
    previous: dict[str, Any] | None,
    now: dt.datetime,
) -> ScheduleResult:
    status: dict[str, Any] = {"name": schedule.name, "missed": 0, **(previous or {})}
    result = ScheduleResult(status=status)
    try:
        timing = Timing.parse(schedule.cron, schedule.time_zone)
    except ScheduleError as err:
        status.pop("nextScheduleTime", None)
        result.error = f"schedule {schedule.name}: {err}"
        return result
    jobs = _owned(kube, target)
    if target.status_key not in status and jobs:  # a lost status: the newest says what fired
        newest = max(jobs, key=ScheduledJob.order)
        status[target.status_key] = newest.name
        if newest.scheduled is not None:
            status["lastScheduleTime"] = format_time(newest.scheduled)
    plan = plan_schedule(
        timing,
        now=now,
        cursor=parse_time(status.get("nextScheduleTime")),
        deadline_seconds=schedule.deadline_seconds,
        suspended=schedule.suspend,
    )
    result.next_time = plan.next_time
    if plan.next_time is not None:
        status["nextScheduleTime"] = format_time(plan.next_time)
    else:
        status.pop("nextScheduleTime", None)
    missed = plan.missed
    if plan.missed:
        result.events.append(
            (WARNING, "ScheduleMissed", f"schedule {schedule.name}: {plan.missed} scheduled"
             f" time(s) missed (past startingDeadlineSeconds={schedule.deadline_seconds}"
             " or suspended)")
        )  # fmt: skip
    if plan.fire is not None:
        missed += _fire(kube, target, schedule, timing, plan.fire, jobs, result)
    status["missed"] = int(status.get("missed") or 0) + missed
    _trim_history(kube, target, schedule, jobs, result)
    return result


def _fire(
    kube: Kube,
    target: Target,
    schedule: Cadence,
    timing: Timing,
    instant: dt.datetime,
    jobs: list[ScheduledJob],
    result: ScheduleResult,
) -> int:
    """Create the object for `instant` unless the policy says skip; returns the times skipped."""
    kind, name, when = target.kind, target.name(instant), format_time(instant)
    if any(j.name == name for j in jobs):  # fired by an earlier pass
        result.status.update({target.status_key: name, "lastScheduleTime": when})
        return 0
    decision = concurrency_decision(schedule.concurrency_policy, jobs, noun=kind)
    if decision.action == "skip":
        result.events.append(
            (NORMAL, "ScheduleSkipped", f"schedule {schedule.name}: {when} skipped"
             f" (concurrencyPolicy Forbid, {decision.reason})")
        )  # fmt: skip
        return 1
    for victim in decision.cancel:
        try:
            patch = {"spec": {"cancel": True}}
            kube.patch(target.api_version, kind, victim, patch, target.namespace)
            result.events.append(
                (NORMAL, f"{kind}Cancelled", f"schedule {schedule.name}: cancelled {victim}"
                 f" to start the run of {when} (concurrencyPolicy Replace)")
            )  # fmt: skip
        except ApiError as err:
            if err.status != 404:
                raise
    try:
        body = target.build(instant, timing.zone)
    except ScheduleError as err:
        result.error = f"schedule {schedule.name}: {err}"
        return 1
    try:
        kube.create(body)
        result.events.append(
            (NORMAL, f"{kind}Created", f"schedule {schedule.name}: created {kind} {name}"
             f" for {when}{target.describe(body)}")
        )  # fmt: skip
    except ApiError as err:
        if err.status == 422:  # e.g. a rendered value the schema refuses: not retried
            result.error = f"schedule {schedule.name}: {kind} for {when} refused: {err}"
            result.events.append((WARNING, "ScheduleFailed", result.error))
            return 1
        if err.status != 409:
            raise
        # Already fired (another pass, another operator): the name is the guard.
    result.status.update({target.status_key: name, "lastScheduleTime": when})
    return 0


def _trim_history(
    kube: Kube,
    target: Target,
    schedule: Cadence,
    jobs: list[ScheduledJob],
    result: ScheduleResult,
) -> None:
    doomed = history_deletions(jobs, schedule.succeeded_limit, schedule.failed_limit)
    kind = target.kind
    for job in doomed:
        try:
            if kube.delete(target.api_version, kind, job.name, target.namespace, uid=job.uid):
                result.events.append(
                    (NORMAL, f"{kind}Deleted", f"schedule {schedule.name}: deleted {job.phase}"
                     f" {kind} {job.name} (history limit{target.kept})")
                )  # fmt: skip
        except ApiError as err:
            if err.status != 409:  # 409: replaced meanwhile by a same-named object, not ours
                raise
