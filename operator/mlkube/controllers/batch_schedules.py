"""One evaluation of one BatchEndpoint schedule: fire, skip or count missed; cancel for Replace;
trim the history. I/O through the `Kube` protocol; every decision is in reconcile/.

Never double-fire: the job for a scheduled time has one possible name and is created with POST
only, so a 409 means the time already fired (an earlier pass whose status write was lost, a
restarted operator, a second operator). The status is only a cache of what happened.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.batch import BatchEndpointSpec, BatchSchedule
from mlkube.builders.batch_scheduled_job import (
    build_scheduled_job,
    owned_by,
    schedule_selector,
    scheduled_job,
)
from mlkube.contract import API_VERSION, KIND_BATCH_JOB
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.batch_schedule import (
    ScheduleError,
    Timing,
    format_time,
    parse_time,
    plan_schedule,
    scheduled_job_name,
)
from mlkube.reconcile.batch_schedule_jobs import (
    ScheduledJob,
    concurrency_decision,
    history_deletions,
)

WARNING: Final = "Warning"
NORMAL: Final = "Normal"


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str
    uid: str
    spec: BatchEndpointSpec


@dataclass
class ScheduleResult:
    status: dict[str, Any]  # a ScheduleStatus document
    next_time: dt.datetime | None = None
    error: str | None = None  # why the schedule cannot run (shown in conditions)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def _jobs(kube: Kube, ep: Endpoint, schedule: str) -> list[dict[str, Any]]:
    found = kube.list(
        API_VERSION,
        KIND_BATCH_JOB,
        ep.namespace,
        label_selector=schedule_selector(ep.name, schedule),
    )
    return [j for j in found if owned_by(j, ep.uid)]


def run_schedule(
    kube: Kube,
    ep: Endpoint,
    schedule: BatchSchedule,
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
    jobs = [scheduled_job(j) for j in _jobs(kube, ep, schedule.name)]
    if "lastJob" not in status and jobs:  # a lost status: the newest job says what last fired
        newest = max(jobs, key=ScheduledJob.order)
        status["lastJob"] = newest.name
        if newest.scheduled is not None:
            status["lastScheduleTime"] = format_time(newest.scheduled)
    plan = plan_schedule(
        timing,
        now=now,
        cursor=parse_time(status.get("nextScheduleTime")),
        deadline_seconds=schedule.starting_deadline_seconds,
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
             f" time(s) missed (past startingDeadlineSeconds={schedule.starting_deadline_seconds}"
             " or suspended)")
        )  # fmt: skip
    if plan.fire is not None:
        missed += _fire(kube, ep, schedule, timing, plan.fire, jobs, result)
    status["missed"] = int(status.get("missed") or 0) + missed
    _trim_history(kube, ep, schedule, jobs, result)
    return result


def _fire(
    kube: Kube,
    ep: Endpoint,
    schedule: BatchSchedule,
    timing: Timing,
    instant: dt.datetime,
    jobs: list[ScheduledJob],
    result: ScheduleResult,
) -> int:
    """Create the job for `instant` unless the policy says skip; returns the times skipped."""
    name = scheduled_job_name(ep.name, schedule.name, instant)
    when = format_time(instant)
    if any(j.name == name for j in jobs):  # fired by an earlier pass
        result.status.update(lastJob=name, lastScheduleTime=when)
        return 0
    decision = concurrency_decision(schedule.concurrency_policy, jobs)
    if decision.action == "skip":
        result.events.append(
            (NORMAL, "ScheduleSkipped", f"schedule {schedule.name}: {when} skipped"
             f" (concurrencyPolicy Forbid, {decision.reason})")
        )  # fmt: skip
        return 1
    for victim in decision.cancel:
        try:
            kube.patch(
                API_VERSION, KIND_BATCH_JOB, victim, {"spec": {"cancel": True}}, ep.namespace
            )
            result.events.append(
                (NORMAL, "BatchJobCancelled", f"schedule {schedule.name}: cancelled {victim}"
                 f" to start the run of {when} (concurrencyPolicy Replace)")
            )  # fmt: skip
        except ApiError as err:
            if err.status != 404:
                raise
    try:
        body = build_scheduled_job(
            endpoint=ep.name, namespace=ep.namespace, uid=ep.uid, spec=ep.spec,
            schedule=schedule, instant=instant, zone=timing.zone,
        )  # fmt: skip
    except ScheduleError as err:
        result.error = f"schedule {schedule.name}: {err}"
        return 1
    try:
        kube.create(body)
        result.events.append(
            (NORMAL, "BatchJobCreated", f"schedule {schedule.name}: created BatchJob {name}"
             f" for {when} (input {body['spec']['input']['uri']})")
        )  # fmt: skip
    except ApiError as err:
        if err.status == 422:  # e.g. a rendered uri the BatchJob schema refuses: not retried
            result.error = f"schedule {schedule.name}: BatchJob for {when} refused: {err}"
            result.events.append((WARNING, "ScheduleFailed", result.error))
            return 1
        if err.status != 409:
            raise
        # Already fired (another pass, another operator): the name is the guard.
    result.status.update(lastJob=name, lastScheduleTime=when)
    return 0


def _trim_history(
    kube: Kube,
    ep: Endpoint,
    schedule: BatchSchedule,
    jobs: list[ScheduledJob],
    result: ScheduleResult,
) -> None:
    doomed = history_deletions(
        jobs, schedule.successful_jobs_history_limit, schedule.failed_jobs_history_limit
    )
    for job in doomed:
        try:
            if kube.delete(API_VERSION, KIND_BATCH_JOB, job.name, ep.namespace, uid=job.uid):
                result.events.append(
                    (NORMAL, "BatchJobDeleted", f"schedule {schedule.name}: deleted {job.phase}"
                     f" BatchJob {job.name} (history limit; its output stays)")
                )  # fmt: skip
        except ApiError as err:
            if err.status != 409:  # 409: replaced meanwhile by a same-named job, not ours
                raise
