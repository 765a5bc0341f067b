"""The BatchEndpoint controller: Model references and readiness, schedules, status.

A batch endpoint owns no workload; one pass reads its Models (Ready means every deployment's
Model is Ready), keeps their `deployedBy` listing it (the delete guard and `mlkube model show`
read that), evaluates every schedule (controllers/batch_schedules.py) and writes the status.
It returns when the next pass is due: the earliest next scheduled time, capped by a resync
period, so the periodic loop (handlers/batch_endpoint.py) sleeps exactly until a schedule
fires. Level-based and idempotent: a restarted operator converges to the same objects, and
the job names keep a scheduled time from firing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.batch import BatchEndpointSpec
from mlkube.builders.batch_endpoint_status import Problem, build_batch_endpoint_status
from mlkube.contract import API_VERSION, KIND_BATCH_ENDPOINT
from mlkube.controllers.batch_schedules import Endpoint, run_schedule
from mlkube.controllers.endpoint_models import (
    read_models,
    repair_deployed_by,
    sync_model_references,
)
from mlkube.controllers.kube import Kube, get_live
from mlkube.reconcile.batch_schedule import format_time
from mlkube.reconcile.endpoint_changes import merge_patch

RESYNC_SECONDS: Final = 300.0  # the longest sleep: picks up Model and hand-made changes
MIN_DELAY: Final = 0.05
# Woken this long after a scheduled time, so the pass's clock is past it.
FIRE_SLACK: Final = 0.05


@dataclass(frozen=True)
class Outcome:
    """Events to post about `subject`, and when to run again (None: the endpoint is gone)."""

    delay: float | None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    subject: dict[str, Any] | None = None


def reconcile(kube: Kube, namespace: str, name: str, uid: str, now: dt.datetime) -> Outcome:
    """One pass over the BatchEndpoint `namespace/name` with this `uid` (None delay when gone)."""
    obj = get_live(kube, API_VERSION, KIND_BATCH_ENDPOINT, name, namespace, uid)
    if obj is None:
        return Outcome(delay=None)
    stamp = format_time(now)
    generation = int(obj["metadata"].get("generation") or 1)
    previous = obj.get("status") or {}
    try:
        spec = BatchEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        problem = Problem("InvalidSpec", f"invalid spec: {err}")
        status = build_batch_endpoint_status(
            spec=None, generation=generation, problems=[problem],
            schedules=previous.get("schedules") or [], previous=previous, now=stamp,
        )  # fmt: skip
        write_status(kube, obj, status)
        return Outcome(delay=RESYNC_SECONDS)
    models = {d.model for d in spec.deployments}
    _, blockers = read_models(kube, namespace, models)
    problems = [Problem(b.reason, b.message) for b in blockers]
    sync_model_references(kube, namespace, name, models, kind=KIND_BATCH_ENDPOINT)

    ep = Endpoint(name=name, namespace=namespace, uid=uid, spec=spec)
    before = {str(s.get("name")): s for s in previous.get("schedules") or []}
    schedules, events, wake = [], [], []
    for schedule in spec.schedules:
        result = run_schedule(kube, ep, schedule, before.get(schedule.name), now)
        schedules.append(result.status)
        events += result.events
        if result.error:
            problems.append(Problem("InvalidSchedule", result.error))
        if result.next_time is not None:
            wake.append((result.next_time - now).total_seconds() + FIRE_SLACK)
    status = build_batch_endpoint_status(
        spec=spec, generation=generation, problems=problems,
        schedules=schedules, previous=previous, now=stamp,
    )  # fmt: skip
    write_status(kube, obj, status)
    delay = min([RESYNC_SECONDS, *wake])
    subject = {"apiVersion": API_VERSION, "kind": KIND_BATCH_ENDPOINT, "metadata": obj["metadata"]}
    return Outcome(delay=max(delay, MIN_DELAY), events=events, subject=subject)


def write_status(kube: Kube, obj: dict[str, Any], desired: dict[str, Any]) -> None:
    """Merge-patch only what changed (an unchanged status costs no write)."""
    patch = merge_patch(obj.get("status") or {}, desired)
    if patch:
        meta = obj["metadata"]
        kube.patch(
            API_VERSION,
            KIND_BATCH_ENDPOINT,
            meta["name"],
            {"status": patch},
            meta["namespace"],
            subresource="status",
        )


def release(kube: Kube, namespace: str, models: Collection[str] | None = None) -> None:
    """A BatchEndpoint is gone: the Models forget it (recomputed from the live endpoints, so a
    same-named successor keeps its references): the `models` it used, else every Model of the
    namespace. Its scheduled BatchJobs are owned by it: the garbage collector deletes them.
    Idempotent; no finalizer needed."""
    if models is None:
        repair_deployed_by(kube, namespace)
        return
    for model in sorted(models):
        repair_deployed_by(kube, namespace, model)
