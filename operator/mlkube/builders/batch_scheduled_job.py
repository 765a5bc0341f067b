"""The BatchJob a schedule creates for one scheduled time, and reading those jobs back (pure).

The job is named after its scheduled time (reconcile/batch_schedule.py), labelled with the
endpoint and schedule (so one LIST finds a schedule's jobs), annotated with the exact time, and
owned by the BatchEndpoint (deleting the endpoint deletes its scheduled jobs; their outputs
stay in the store). It pins the deployment it resolved at fire time, so a later change of
`defaultDeployment` does not change what a recorded run used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from mlkube.api.batch import BatchEndpointSpec, BatchSchedule
from mlkube.builders.names import label_value, selector_string
from mlkube.contract import (
    ANNOTATION_SCHEDULED_TIME,
    API_VERSION,
    KIND_BATCH_ENDPOINT,
    KIND_BATCH_JOB,
    LABEL_BATCH_ENDPOINT,
    LABEL_MANAGED_BY,
    LABEL_SCHEDULE,
    MANAGED_BY,
)
from mlkube.reconcile.batch_schedule import format_time, parse_time, scheduled_job_name
from mlkube.reconcile.batch_schedule_jobs import ScheduledJob, render_uri


def schedule_labels(endpoint: str, schedule: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_BATCH_ENDPOINT: label_value(endpoint),
        LABEL_SCHEDULE: schedule,
    }


def schedule_selector(endpoint: str, schedule: str) -> str:
    return selector_string(schedule_labels(endpoint, schedule))


def build_scheduled_job(
    *,
    endpoint: str,
    namespace: str,
    uid: str,
    spec: BatchEndpointSpec,
    schedule: BatchSchedule,
    instant: dt.datetime,
    zone: dt.tzinfo,
) -> dict[str, Any]:
    """The BatchJob for `schedule` at `instant`; ScheduleError if a uri template cannot render."""
    job_spec: dict[str, Any] = {
        "endpoint": endpoint,
        "input": {
            "uri": render_uri(schedule.input.uri, instant, zone),
            "type": schedule.input.type,
            "format": schedule.input.format,
        },
    }
    deployment = schedule.deployment or spec.resolved_default()
    if deployment is not None:
        job_spec["deployment"] = deployment
    if schedule.output is not None:
        job_spec["output"] = {"uri": render_uri(schedule.output.uri, instant, zone)}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_BATCH_JOB,
        "metadata": {
            "name": scheduled_job_name(endpoint, schedule.name, instant),
            "namespace": namespace,
            "labels": schedule_labels(endpoint, schedule.name),
            "annotations": {ANNOTATION_SCHEDULED_TIME: format_time(instant)},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND_BATCH_ENDPOINT,
                    "name": endpoint,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def scheduled_job(obj: Mapping[str, Any]) -> ScheduledJob:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return ScheduledJob(
        name=str(meta.get("name")),
        uid=str(meta.get("uid")),
        scheduled=parse_time(annotations.get(ANNOTATION_SCHEDULED_TIME)),
        created=str(meta.get("creationTimestamp") or ""),
        phase=(obj.get("status") or {}).get("phase"),
        cancel=bool((obj.get("spec") or {}).get("cancel")),
    )
