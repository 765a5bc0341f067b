"""From an object's state to the events it implies (level-based, docs/notifications.md §3).

Events are not fired from code paths: `implied_events(kind, obj)` lists every occurrence the
object's current status records, each with its stable id and the transition time the status
holds. The notifier runs it on every watch event and enqueues the ids it has not seen, so an
event lost to an operator crash is implied again by the next listing. What the status does not
record (a phase it went through while the operator was down) cannot be implied: the status
keeps what is needed (the drift episode's end, when the split last changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlkube.contract import (
    KIND_BATCH_JOB,
    KIND_MODEL,
    KIND_ONLINE_ENDPOINT,
    KIND_PIPELINE_RUN,
    PLURAL_BATCH_JOBS,
    PLURAL_MODELS,
    PLURAL_PIPELINE_RUNS,
)
from mlkube.events import catalogue as c
from mlkube.events import data as d
from mlkube.events.extract_endpoint import endpoint_events
from mlkube.events.occurrence import ObjectFacts, Occurrence

FAILED_PHASES = ("Failed", "Cancelled")
# Kinds whose state implies events (the notifier watches these).
EVENT_KINDS = (KIND_MODEL, KIND_ONLINE_ENDPOINT, KIND_BATCH_JOB, KIND_PIPELINE_RUN)


def implied_events(kind: str, obj: Mapping[str, Any]) -> list[Occurrence]:
    """Every occurrence `obj`'s status records, oldest first where the status tells."""
    if kind == KIND_MODEL:
        return model_events(obj)
    if kind == KIND_ONLINE_ENDPOINT:
        return endpoint_events(obj)
    if kind == KIND_BATCH_JOB:
        return batch_job_events(obj)
    if kind == KIND_PIPELINE_RUN:
        return pipeline_run_events(obj)
    return []


def deletion_events(kind: str, obj: Mapping[str, Any], now: str) -> list[Occurrence]:
    """What deleting `obj` implies (its last state as the watch delivered it); `now` is the
    time when the object carries no deletionTimestamp."""
    if kind != KIND_MODEL:
        return []
    facts = ObjectFacts.of(KIND_MODEL, PLURAL_MODELS, obj)
    spec = obj.get("spec") or {}
    when = (obj.get("metadata") or {}).get("deletionTimestamp") or now
    version = str(spec.get("version") or "")
    data = d.ModelDeleted(name=str(spec.get("modelName") or facts.name), version=version)
    return [facts.occurrence(c.MODEL_DELETED, (), when, data, model_version=version or None)]


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None


def model_events(obj: Mapping[str, Any]) -> list[Occurrence]:
    facts = ObjectFacts.of(KIND_MODEL, PLURAL_MODELS, obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    artifact = status.get("artifact") or {}
    digest = artifact.get("digest")
    name, version = str(spec.get("modelName") or facts.name), str(spec.get("version") or "")
    ids = {"model_version": version or None, "model_digest": digest}
    out: list[Occurrence] = []
    ready = condition(status, "Ready")
    if status.get("phase") == "Ready" and ready is not None and ready.get("status") == "True":
        run = ((spec.get("lineage") or {}).get("run")) or None
        labels = (obj.get("metadata") or {}).get("labels") or {}
        registered = d.ModelRegistered(
            name=name,
            version=version,
            framework=str(spec.get("framework") or ""),
            uri=str((spec.get("artifact") or {}).get("uri") or ""),
            digest=digest,
            lineage=d.Lineage(run=d.RunRef.model_validate(run)) if run else None,
            properties={str(k): str(v) for k, v in (spec.get("properties") or {}).items()},
            labels={str(k): str(v) for k, v in labels.items()},
        )
        time = ready.get("lastTransitionTime")
        out.append(facts.occurrence(c.MODEL_REGISTERED, (), time, registered, **ids))
    if digest:
        verified = d.ModelVerified(
            name=name,
            version=version,
            digest=digest,
            size=artifact.get("size"),
            file_count=artifact.get("fileCount"),
        )
        time = artifact.get("verifiedAt")
        out.append(facts.occurrence(c.MODEL_VERIFIED, (digest,), time, verified, **ids))
    return out


def _counts(doc: Mapping[str, Any] | None) -> d.Counts:
    doc = doc or {}
    return d.Counts(
        total=int(doc.get("total") or 0),
        succeeded=int(doc.get("succeeded") or 0),
        failed=int(doc.get("failed") or 0),
    )


def batch_job_events(obj: Mapping[str, Any]) -> list[Occurrence]:
    facts = ObjectFacts.of(KIND_BATCH_JOB, PLURAL_BATCH_JOBS, obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    phase = status.get("phase")

    def data(phase_name: str) -> d.BatchJobPhase:
        return d.BatchJobPhase(
            name=facts.name,
            endpoint=str(spec.get("endpoint") or ""),
            deployment=status.get("deployment") or spec.get("deployment"),
            model=status.get("model"),
            phase=phase_name,
            counts=d.BatchCounts(
                mini_batches=_counts(status.get("miniBatches")), items=_counts(status.get("items"))
            ),
            output_uri=status.get("outputUri"),
            message=status.get("message"),
        )

    return _phase_events(
        facts, status, data, (c.BATCHJOB_STARTED, c.BATCHJOB_SUCCEEDED, c.BATCHJOB_FAILED)
    ) if phase else []  # fmt: skip


def pipeline_run_events(obj: Mapping[str, Any]) -> list[Occurrence]:
    facts = ObjectFacts.of(KIND_PIPELINE_RUN, PLURAL_PIPELINE_RUNS, obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    trigger = (spec.get("trigger") or {}).get("type")

    def data(phase_name: str) -> d.PipelineRunPhase:
        return d.PipelineRunPhase(
            name=facts.name,
            pipeline=str(spec.get("pipeline") or ""),
            phase=phase_name,
            trigger=trigger or "manual",
            produced_models=[str(m) for m in status.get("producedModels") or []],
            message=status.get("message"),
        )

    if not status.get("phase"):
        return []
    events = (c.PIPELINERUN_STARTED, c.PIPELINERUN_SUCCEEDED, c.PIPELINERUN_FAILED)
    return _phase_events(facts, status, data, events)


def _phase_events(
    facts: ObjectFacts,
    status: Mapping[str, Any],
    data: Any,
    types: tuple[c.EventType, c.EventType, c.EventType],
) -> list[Occurrence]:
    """started (once startTime is set) and succeeded | failed (once finished), per run."""
    started, succeeded, failed = types
    phase = str(status.get("phase"))
    out = []
    start = status.get("startTime")
    if start:
        out.append(facts.occurrence(started, (), start, data("Running")))
    end = status.get("completionTime")
    if phase == "Succeeded":
        out.append(facts.occurrence(succeeded, (), end, data(phase)))
    elif phase in FAILED_PHASES:
        out.append(facts.occurrence(failed, (), end, data(phase)))
    return out
