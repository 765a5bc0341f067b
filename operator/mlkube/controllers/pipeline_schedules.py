"""One evaluation of one Pipeline schedule: the PipelineRun it starts per scheduled time, on the
runner BatchEndpoint schedules use (controllers/schedules.py: fire, Forbid/Replace/Allow,
missed times, history limits), so both kinds behave alike to the letter.

A run is named `<pipeline>-<schedule>-<unix minutes>` and created with POST only: a restart
or a lost status can never start a slot twice. The run carries `spec.trigger` {type: schedule,
name, detail: the scheduled time} and the schedule's parameters.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Final
from zoneinfo import ZoneInfo

from mlkube.api.pipeline_triggers import PipelineSchedule
from mlkube.builders.pipeline_trigger_run import (
    PipelineRef,
    build_run,
    schedule_run_name,
    source_labels,
    source_selector,
)
from mlkube.contract import API_VERSION, KIND_PIPELINE_RUN
from mlkube.controllers.kube import Kube
from mlkube.controllers.schedules import ScheduleResult, Target, cadence, run_schedule
from mlkube.reconcile.batch_schedule import format_time

# A Pipeline schedule has no startingDeadlineSeconds field: a slot missed by more than this
# (the operator down) is counted missed rather than started late (BatchSchedule's default).
DEADLINE_SECONDS: Final = 3600


def _build(
    owner: PipelineRef, schedule: PipelineSchedule, instant: dt.datetime, zone: ZoneInfo
) -> dict[str, Any]:
    local = instant.astimezone(zone).isoformat()
    return build_run(
        owner,
        name=schedule_run_name(owner.name, schedule.name, instant),
        parameters=schedule.parameters,
        trigger={
            "type": "schedule",
            "name": schedule.name,
            "detail": f"scheduled time {format_time(instant)} ({local} {zone.key})",
        },
        labels=source_labels(owner.name, schedule=schedule.name),
        scheduled=instant,
    )


def run_pipeline_schedule(
    kube: Kube,
    owner: PipelineRef,
    schedule: PipelineSchedule,
    previous: dict[str, Any] | None,
    now: dt.datetime,
) -> ScheduleResult:
    target = Target(
        api_version=API_VERSION,
        kind=KIND_PIPELINE_RUN,
        namespace=owner.namespace,
        owner_uid=owner.uid,
        selector=source_selector(owner.name, schedule=schedule.name),
        status_key="lastRun",
        name=functools.partial(schedule_run_name, owner.name, schedule.name),
        build=functools.partial(_build, owner, schedule),
        kept="; the Models it registered stay",
    )
    timing = cadence(
        schedule,
        deadline_seconds=DEADLINE_SECONDS,
        succeeded_limit=schedule.successful_runs_history_limit,
        failed_limit=schedule.failed_runs_history_limit,
    )
    return run_schedule(kube, target, timing, previous, now)
