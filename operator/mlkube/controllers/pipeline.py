"""The Pipeline controller: validity and references, schedules, triggers, cache GC, status.

A Pipeline is a template and runs nothing itself; one pass (docs/pipelines.md §5) reads it,
checks what it names (controllers/pipeline_references.py), evaluates every schedule
(controllers/pipeline_schedules.py) and trigger (controllers/pipeline_triggers.py), collects
expired cache entries of its store (controllers/pipeline_cache_gc.py), counts its runs and
writes the status. It returns when the next pass is due: the earliest schedule time, poll or
end of a refusal, capped by a resync period, so the periodic loop (handlers/pipeline.py) sleeps
exactly until something can happen. Level-based and idempotent: every run it starts has a
name fixed by what started it and is created with POST only, so a restarted operator, a lost
status or a second pass never starts anything twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.pipeline import PipelineSpec
from mlkube.builders.operator_config import OperatorConfig, pipeline_store
from mlkube.builders.pipeline_conditions import Problem, build_pipeline_status
from mlkube.builders.pipeline_trigger_run import PipelineRef, RunFacts, run_facts
from mlkube.contract import API_VERSION, KIND_ONLINE_ENDPOINT, KIND_PIPELINE, KIND_PIPELINE_RUN
from mlkube.controllers import pipeline_store as store
from mlkube.controllers.kube import Kube, get_live
from mlkube.controllers.pipeline_cache_gc import COLLECTOR, CacheCollector
from mlkube.controllers.pipeline_references import Objects, reference_problems
from mlkube.controllers.pipeline_schedules import run_pipeline_schedule
from mlkube.controllers.pipeline_triggers import (
    DigestOf,
    Polls,
    TriggerResult,
    run_drift,
    run_new_data,
)
from mlkube.reconcile.batch_schedule import format_time
from mlkube.reconcile.endpoint_changes import merge_patch
from mlkube.storage.digest import digest_of_contents
from mlkube.storage.errors import StorageError
from mlkube.storage.transfer import translated_errors

RESYNC_SECONDS: Final = 300.0  # the longest sleep: picks up hand-made changes, missed events
MIN_DELAY: Final = 0.05
FIRE_SLACK: Final = 0.05  # woken this long after a scheduled time, so the clock is past it
EMPTY_DIGEST: Final = digest_of_contents([]).digest  # what an empty prefix holds
POLLS: Final = Polls()
Event = tuple[str, str, str]


@dataclass(frozen=True)
class Outcome:
    """Events to post about `subject`, and when to run again (None: the Pipeline is gone)."""

    delay: float | None
    events: list[Event] = field(default_factory=list)
    subject: dict[str, Any] | None = None
    watched: frozenset[str] = frozenset()  # OnlineEndpoints its onDrift triggers read


def store_digest(namespace: str, config: OperatorConfig) -> DigestOf:
    """The content digest of a prefix, re-read only when its listing fingerprint changed."""

    def digest_of(uri: str) -> str:
        try:
            with translated_errors("read", uri):  # a transport's own errors (botocore's) too
                print_ = store.fingerprint(uri, namespace, config)
                if print_ == "":
                    return EMPTY_DIGEST
                known = store.DigestMemo.get(uri, print_) if print_ else None
                if known is None:
                    known = store.digest(uri, namespace, config)
                    if print_:
                        store.DigestMemo.put(uri, print_, known)
                return known
        except StorageError as err:
            raise store.StoreUnreadable(str(err)) from err

    return digest_of


def list_runs(kube: Kube, namespace: str, pipeline: str) -> list[RunFacts]:
    found = kube.list(API_VERSION, KIND_PIPELINE_RUN, namespace)
    return [run_facts(r) for r in found if (r.get("spec") or {}).get("pipeline") == pipeline]


def reconcile(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    name: str,
    uid: str,
    now: dt.datetime,
    *,
    digest_of: DigestOf | None = None,
    polls: Polls = POLLS,
    collector: CacheCollector = COLLECTOR,
) -> Outcome:
    """One pass over the Pipeline `namespace/name` with this `uid` (None delay when gone)."""
    obj = get_live(kube, API_VERSION, KIND_PIPELINE, name, namespace, uid)
    if obj is None:
        return Outcome(delay=None)
    generation = int(obj["metadata"].get("generation") or 1)
    previous = obj.get("status") or {}
    subject = {"apiVersion": API_VERSION, "kind": KIND_PIPELINE, "metadata": obj["metadata"]}
    try:
        spec = PipelineSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        problem = Problem("InvalidSpec", f"invalid spec: {err}")
        status = build_pipeline_status(
            generation=generation, problems=[problem], shape=None,
            runs=list_runs(kube, namespace, name), schedules=previous.get("schedules") or [],
            triggers=previous.get("triggers") or [], previous=previous, now=format_time(now),
        )  # fmt: skip
        write_status(kube, obj, status)
        return Outcome(delay=RESYNC_SECONDS, subject=subject)
    owner = PipelineRef(name=name, namespace=namespace, uid=uid)
    artifact_store = spec.artifact_store or pipeline_store(config)
    objects = Objects(kube, namespace)
    problems = reference_problems(objects, spec, artifact_store)
    runs = list_runs(kube, namespace, name)
    events: list[Event] = []
    wake: list[float] = []

    before = {str(s.get("name")): s for s in previous.get("schedules") or []}
    schedules = []
    for schedule in spec.schedules:
        result = run_pipeline_schedule(kube, owner, schedule, before.get(schedule.name), now)
        result.status.pop("missed", None)  # the BatchEndpoint's counter; Pipelines say why
        if result.error:
            problems.append(Problem("InvalidSchedule", result.error))
        news = [m for t, r, m in result.events if r in ("ScheduleSkipped", "ScheduleMissed")]
        if result.error or news:
            result.status["message"] = result.error or news[-1]
        schedules.append(result.status)
        events += result.events
        if result.next_time is not None:
            wake.append((result.next_time - now).total_seconds() + FIRE_SLACK)

    fired = {str(t.get("name")): t for t in previous.get("triggers") or []}
    digest = digest_of or store_digest(namespace, config)
    triggers, watched = [], set()
    for trigger in spec.triggers:
        old = fired.get(trigger.name) or {}
        outcome: TriggerResult
        if trigger.on_drift is not None:
            watched.add(trigger.on_drift.endpoint)
            endpoint = objects.get(KIND_ONLINE_ENDPOINT, trigger.on_drift.endpoint)
            outcome = run_drift(kube, owner, trigger, endpoint, old, runs, now)
        else:
            outcome = run_new_data(kube, owner, spec, trigger, old, digest, polls, now)
        triggers.append(outcome.status)
        events += outcome.events
        problems += outcome.problems
        if outcome.wake is not None:
            wake.append(outcome.wake)

    if any(r.endswith(("Created", "Fired")) for _, r, _ in events):
        runs = list_runs(kube, namespace, name)  # what this pass started counts at once
    if artifact_store and collector.claim(artifact_store, namespace, now):
        events += collect_cache(collector, artifact_store, namespace, config, now)
    status = build_pipeline_status(
        generation=generation, problems=problems,
        shape=(len(spec.steps), len(spec.schedules), len(spec.triggers)), runs=runs,
        schedules=schedules, triggers=triggers, previous=previous, now=format_time(now),
    )  # fmt: skip
    write_status(kube, obj, status)
    delay = max(min([RESYNC_SECONDS, *wake]), MIN_DELAY)
    return Outcome(delay=delay, events=events, subject=subject, watched=frozenset(watched))


def collect_cache(
    collector: CacheCollector,
    artifact_store: str,
    namespace: str,
    config: OperatorConfig,
    now: dt.datetime,
) -> list[Event]:
    done = collector.collect(artifact_store, namespace, config, now)
    events: list[Event] = []
    if done.deleted:
        events.append(
            ("Normal", "CacheEntriesDeleted", f"deleted {len(done.deleted)} expired pipeline"
             f" cache entr{'y' if len(done.deleted) == 1 else 'ies'} (past their maxAge) of"
             f" {namespace} in {artifact_store}")
        )  # fmt: skip
    if done.error:
        events.append(("Warning", "CacheCollectionFailed", f"cache GC: {done.error}"))
    return events


def write_status(kube: Kube, obj: dict[str, Any], desired: dict[str, Any]) -> None:
    """Merge-patch only what changed (an unchanged status costs no write)."""
    patch = merge_patch(obj.get("status") or {}, desired)
    if patch:
        meta = obj["metadata"]
        kube.patch(
            API_VERSION, KIND_PIPELINE, meta["name"], {"status": patch}, meta["namespace"],
            subresource="status",
        )  # fmt: skip
