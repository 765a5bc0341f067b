"""One evaluation of one BatchEndpoint schedule: the BatchJob it creates per scheduled time, on
the shared runner (controllers/schedules.py: fire, skip or count missed, Replace, history).

Never double-fire: the job for a scheduled time has one possible name and is created with POST
only, so a 409 means the time already fired (an earlier pass whose status write was lost, a
restarted operator, a second operator). The status is only a cache of what happened.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from mlkube.api.batch import BatchEndpointSpec, BatchSchedule
from mlkube.builders.batch_scheduled_job import build_scheduled_job, schedule_selector
from mlkube.contract import API_VERSION, KIND_BATCH_JOB
from mlkube.controllers.kube import Kube
from mlkube.controllers.schedules import ScheduleResult, Target, cadence
from mlkube.controllers.schedules import run_schedule as run_cadence
from mlkube.reconcile.batch_schedule import scheduled_job_name

__all__ = ["Endpoint", "ScheduleResult", "run_schedule"]


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str
    uid: str
    spec: BatchEndpointSpec


def _build(
    ep: Endpoint, schedule: BatchSchedule, instant: dt.datetime, zone: ZoneInfo
) -> dict[str, Any]:
    return build_scheduled_job(
        endpoint=ep.name, namespace=ep.namespace, uid=ep.uid, spec=ep.spec,
        schedule=schedule, instant=instant, zone=zone,
    )  # fmt: skip


def run_schedule(
    kube: Kube,
    ep: Endpoint,
    schedule: BatchSchedule,
    previous: dict[str, Any] | None,
    now: dt.datetime,
) -> ScheduleResult:
    target = Target(
        api_version=API_VERSION,
        kind=KIND_BATCH_JOB,
        namespace=ep.namespace,
        owner_uid=ep.uid,
        selector=schedule_selector(ep.name, schedule.name),
        status_key="lastJob",
        name=functools.partial(scheduled_job_name, ep.name, schedule.name),
        build=functools.partial(_build, ep, schedule),
        describe=lambda body: f" (input {body['spec']['input']['uri']})",
        kept="; its output stays",
    )
    timing = cadence(
        schedule,
        deadline_seconds=schedule.starting_deadline_seconds,
        succeeded_limit=schedule.successful_jobs_history_limit,
        failed_limit=schedule.failed_jobs_history_limit,
    )
    return run_cadence(kube, target, timing, previous, now)
