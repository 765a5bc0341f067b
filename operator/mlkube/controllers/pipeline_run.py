"""The PipelineRun controller: snapshot, observe Jobs, decide, act, write status once.

Level-based (docs/pipelines.md §4): every pass reads the run, its snapshot ConfigMap (made on
the first pass from the live Pipeline), its Jobs (by label, kept only with its controller
reference) and the cache store, and decides from them alone. Jobs are named per attempt
and created with POST only, so a restarted operator adopts the Jobs it made (409) instead of
running a finished step again or making a second Job. Status is written with one merge patch
per pass, and only when it changed. Kopf specifics stay in `mlkube.handlers.pipeline_run`;
this module reports Events in its `Outcome`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.pipeline import PipelineSpec
from mlkube.api.pipeline_run import PipelineRunSpec
from mlkube.builders.operator_config import OperatorConfig, pipeline_store
from mlkube.builders.pipeline_step import RunRef
from mlkube.contract import API_VERSION, FIELD_MANAGER, KIND_PIPELINE_RUN
from mlkube.controllers import pipeline_decide as decide
from mlkube.controllers.kube import Kube
from mlkube.controllers.pipeline_apply import advance
from mlkube.controllers.pipeline_builtin import run_builtin
from mlkube.controllers.pipeline_builtins import BuiltinRunner
from mlkube.controllers.pipeline_observe import owned_jobs
from mlkube.controllers.pipeline_snapshot import ensure_snapshot
from mlkube.controllers.pipeline_status import compose_status, failed_status
from mlkube.controllers.pipeline_steps import RunContext
from mlkube.reconcile.pipeline_dag import DagError, dependents, graph_of
from mlkube.reconcile.pipeline_params import ParameterError, typed_parameters

Event = tuple[str, str, str]
POLL_SECONDS: Final = 5.0
FINISHED_RUN: Final = ("Succeeded", "Failed", "Cancelled")
STORE_MISSING: Final = (
    "no artifact store: set spec.artifactStore on Pipeline {pipeline}, or the operator setting "
    "MLKUBE_ARTIFACT_STORE (or MLKUBE_BATCH_OUTPUT_STORE)"
)


@dataclass(frozen=True)
class Outcome:
    events: list[Event] = field(default_factory=list)
    subject: dict[str, Any] | None = None
    requeue_after: float | None = None  # call again after this many seconds (None: events do)


def reconcile(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    name: str,
    now: datetime.datetime,
    builtin: BuiltinRunner = run_builtin,
) -> Outcome:
    obj = kube.get(API_VERSION, KIND_PIPELINE_RUN, name, namespace)
    if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Outcome()
    meta, status = obj["metadata"], dict(obj.get("status") or {})
    if status.get("phase") in FINISHED_RUN:
        return Outcome(subject=obj)
    run = RunRef(name, namespace, str(meta["uid"]))
    generation = int(meta.get("generation", 1))
    try:
        spec = PipelineRunSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        return _stop(kube, obj, status, generation, now, f"invalid spec: {err}")
    snap = ensure_snapshot(kube, run, spec.pipeline, FIELD_MANAGER)
    if snap.spec is None:
        return _stop(kube, obj, status, generation, now, str(snap.problem))
    status["pipelineDigest"] = snap.digest
    try:
        pipeline = PipelineSpec.model_validate(snap.spec)
        parameters = decide.resolve_parameters(pipeline, spec.parameters)
    except (ValidationError, decide.DecisionError) as err:
        return _stop(kube, obj, status, generation, now, f"Pipeline {spec.pipeline}: {err}")
    status["parameters"] = parameters
    store = pipeline.artifact_store or pipeline_store(config)
    if not store:
        return _stop(kube, obj, status, generation, now,
                     STORE_MISSING.format(pipeline=spec.pipeline))  # fmt: skip
    previous = {s.get("name"): dict(s) for s in status.get("steps") or []}
    steps = {s.name: previous.get(s.name) or {"name": s.name, "phase": "Pending", "attempts": 0}
             for s in pipeline.steps}  # fmt: skip
    ctx = RunContext(
        kube=kube, config=config, run=run, spec=spec, pipeline=pipeline, parameters=parameters,
        store=store, now=now, steps=steps,
        wire_steps={str(w.get("name")): dict(w) for w in snap.spec.get("steps") or []},
    )  # fmt: skip
    problem = _resume(ctx, status)
    if problem is not None:
        return _stop(kube, obj, status, generation, now, problem)
    jobs = owned_jobs(kube, namespace, name, run.uid)
    try:
        typed = typed_parameters(pipeline.parameters, parameters)
        plan = advance(ctx, jobs, obj, builtin, list(status.get("conditions") or []),
                       generation, typed)  # fmt: skip
    except (ParameterError, DagError) as err:
        return _stop(kube, obj, status, generation, now, f"Pipeline {spec.pipeline}: {err}")
    new_status = compose_status(status, ctx, plan, generation, now)
    if plan.phase != status.get("phase") and plan.phase in FINISHED_RUN:
        kind = "Normal" if plan.phase == "Succeeded" else "Warning"
        ctx.events.append((kind, f"Run{plan.phase}", plan.message))
    _write(kube, obj, new_status)
    if plan.phase in FINISHED_RUN:
        return Outcome(events=ctx.events, subject=obj)
    requeue = max(1.0, min(ctx.requeue)) if ctx.requeue else POLL_SECONDS
    return Outcome(events=ctx.events, subject=obj, requeue_after=requeue)


def _resume(ctx: RunContext, status: dict[str, Any]) -> str | None:
    """resumeFrom: the source run's succeeded steps become reusable (same key, outputs
    verified); rerunSteps and everything below them run again. A source that is missing, of
    another Pipeline or unfinished stops a run that has not started (later, it is ignored)."""
    spec = ctx.spec
    if not spec.resume_from:
        return None
    source = ctx.kube.get(API_VERSION, KIND_PIPELINE_RUN, spec.resume_from, ctx.run.namespace)
    phase = ((source or {}).get("status") or {}).get("phase")
    problem = None
    if source is None:
        problem = f"resumeFrom: PipelineRun {spec.resume_from} does not exist"
    elif (source.get("spec") or {}).get("pipeline") != spec.pipeline:
        problem = f"resumeFrom: PipelineRun {spec.resume_from} is not a run of {spec.pipeline}"
    elif phase not in FINISHED_RUN:
        problem = f"resumeFrom: PipelineRun {spec.resume_from} has not finished"
    if problem is not None:
        return problem if status.get("phase") in (None, "Pending") else None
    assert source is not None
    ctx.source_steps = {str(s.get("name")): dict(s)
                        for s in (source.get("status") or {}).get("steps") or []}  # fmt: skip
    graph = graph_of(ctx.pipeline.steps)
    ctx.forced = set(spec.rerun_steps) | dependents(graph, spec.rerun_steps)
    return None


def _stop(
    kube: Kube,
    obj: dict[str, Any],
    status: dict[str, Any],
    generation: int,
    now: datetime.datetime,
    message: str,
) -> Outcome:
    """The run cannot start or go on: Failed with `message`."""
    new_status = failed_status(status, message, generation, now)
    _write(kube, obj, new_status)
    events = [] if status.get("phase") == "Failed" else [("Warning", "RunFailed", message)]
    return Outcome(events=events, subject=obj)


def _write(kube: Kube, obj: dict[str, Any], new: dict[str, Any]) -> None:
    before = obj.get("status") or {}
    if all(before.get(k) == v for k, v in new.items()):
        return
    meta = obj["metadata"]
    kube.patch(API_VERSION, KIND_PIPELINE_RUN, meta["name"], {"status": new},
               meta.get("namespace"), subresource="status",
               field_manager=FIELD_MANAGER)  # fmt: skip
