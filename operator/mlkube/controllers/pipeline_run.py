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
from mlkube.controllers.kube import ApiError, Kube
from mlkube.controllers.pipeline_builtin import run_builtin
from mlkube.controllers.pipeline_builtins import BuiltinRunner, run_builtin_step
from mlkube.controllers.pipeline_observe import attempts, owned_jobs
from mlkube.controllers.pipeline_snapshot import ensure_snapshot
from mlkube.controllers.pipeline_start import start
from mlkube.controllers.pipeline_status import compose_status, run_phase
from mlkube.controllers.pipeline_steps import RunContext, observe, stamp

Event = tuple[str, str, str]
POLL_SECONDS: Final = 5.0
FINISHED_RUN: Final = ("Succeeded", "Failed", "Cancelled")
WHEN_FALSE: Final = "skipped: its when condition is false: "  # dependents may still run
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
    jobs = owned_jobs(kube, namespace, name, run.uid)
    by_step = attempts(jobs)
    if spec.cancel:
        _cancel(ctx, jobs, "the run was cancelled")
    else:
        _advance(ctx, by_step, jobs, obj, builtin)
    phase, message = run_phase(ctx, cancelled=spec.cancel)
    new_status = compose_status(status, ctx, phase, message, generation, now)
    if phase != status.get("phase") and phase in FINISHED_RUN:
        kind = "Normal" if phase == "Succeeded" else "Warning"
        ctx.events.append((kind, f"Run{phase}", message))
    _write(kube, obj, status, new_status)
    requeue = min(ctx.requeue) if ctx.requeue else None
    if phase in FINISHED_RUN:
        requeue = None
    elif requeue is None:
        requeue = POLL_SECONDS
    return Outcome(events=ctx.events, subject=obj, requeue_after=max(1.0, requeue or 0)
                   if requeue is not None else None)  # fmt: skip


def _advance(
    ctx: RunContext,
    by_step: dict[str, Any],
    jobs: list[dict[str, Any]],
    obj: dict[str, Any],
    builtin: BuiltinRunner,
) -> None:
    for name, st in ctx.steps.items():
        if ctx.step_spec(name).type == "container":
            observe(ctx, st, by_step.get(name, []))
        elif st.get("phase") == "Running":
            run_builtin_step(ctx, ctx.step_spec(name), obj, builtin)
        if st.get("phase") == "Waiting":
            st["phase"] = "Pending"  # decided again below: hit the other run's entry, or wait
    if ctx.pipeline.fail_fast and any(
        st.get("phase") == "Failed" and not ctx.step_spec(n).continue_on_failure
        for n, st in ctx.steps.items()
    ):
        _cancel(ctx, jobs, "a step failed (failFast)", skip=True)
        return
    for _ in range(len(ctx.steps) + 1):  # built-in and cached steps may free more steps
        phases = {n: str(st.get("phase")) for n, st in ctx.steps.items()}
        when_skipped = {n for n, st in ctx.steps.items() if st.get("phase") == "Skipped"
                        and str(st.get("message") or "").startswith(WHEN_FALSE)}  # fmt: skip
        running = sum(
            1
            for n, p in phases.items()
            if p in ("Running", "Waiting") and ctx.step_spec(n).type == "container"
        )
        plan = decide.plan(ctx.pipeline, phases, when_skipped, running)  # fmt: skip
        for name, why in plan.skip.items():
            st = ctx.steps[name]
            st.update(phase="Skipped", message=why, completionTime=stamp(ctx.now))
        for name in plan.start:
            step = ctx.step_spec(name)
            if not _when(ctx, step):
                continue
            if step.type == "container":
                start(ctx, step)
            else:
                run_builtin_step(ctx, step, obj, builtin)
        after = {n: str(st.get("phase")) for n, st in ctx.steps.items()}
        if after == phases:
            return


def _when(ctx: RunContext, step: Any) -> bool:
    st = ctx.steps[step.name]
    upstream = {n: {"phase": s.get("phase"),
                    "outputs": {o["name"]: o.get("value", o.get("uri")) for o in
                                s.get("outputs") or []},
                    "metrics": s.get("metrics") or {}}
                for n, s in ctx.steps.items() if n in step.dependencies()}  # fmt: skip
    try:
        holds = decide.when_holds(step, ctx.parameters, upstream)
    except decide.DecisionError as err:
        st.update(phase="Failed", message=str(err)[-1024:], completionTime=stamp(ctx.now))
        ctx.events.append(("Warning", "StepFailed", f"step {step.name}: {err}"[:1024]))
        return False
    if not holds:
        st.update(phase="Skipped", message=f"{WHEN_FALSE}{step.when}"[:1024],
                  completionTime=stamp(ctx.now))  # fmt: skip
    return holds


def _cancel(ctx: RunContext, jobs: list[dict[str, Any]], why: str, skip: bool = False) -> None:
    """Delete the running Jobs; unfinished steps end Cancelled (failFast: not started ones
    Skipped)."""
    for job in jobs:
        finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in (job.get("status") or {}).get("conditions") or [])  # fmt: skip
        if not finished:
            try:
                ctx.kube.delete(
                    "batch/v1",
                    "Job",
                    job["metadata"]["name"],
                    ctx.run.namespace,
                    propagation="Background",
                    uid=job["metadata"].get("uid"),
                )
            except ApiError as err:
                if err.status not in (404, 409):
                    raise
    for st in ctx.steps.values():
        if st.get("phase") in decide.FINISHED:
            continue
        started = st.get("phase") in ("Running", "Waiting") or int(st.get("attempts") or 0) > 0
        phase = "Skipped" if skip and not started else "Cancelled"
        st.update(phase=phase, message=why, completionTime=stamp(ctx.now))
        st.pop("nextAttemptTime", None)


def _stop(
    kube: Kube,
    obj: dict[str, Any],
    status: dict[str, Any],
    generation: int,
    now: datetime.datetime,
    message: str,
) -> Outcome:
    """The run cannot start or go on: Failed with `message`."""
    from mlkube.controllers.pipeline_status import failed_status

    new_status = failed_status(status, message, generation, now)
    _write(kube, obj, status, new_status)
    events = [] if status.get("phase") == "Failed" else [("Warning", "RunFailed", message)]
    return Outcome(events=events, subject=obj)


def _write(kube: Kube, obj: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
    before = obj.get("status") or {}
    if all(before.get(k) == v for k, v in new.items()):
        return
    meta = obj["metadata"]
    kube.patch(API_VERSION, KIND_PIPELINE_RUN, meta["name"], {"status": new},
               meta.get("namespace"), subresource="status",
               field_manager=FIELD_MANAGER)  # fmt: skip
