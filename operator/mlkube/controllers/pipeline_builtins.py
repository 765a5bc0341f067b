"""The hook for built-in steps (registerModel, evaluate, deploy, batch): docs/pipelines.md §4.

Built-in steps run in the operator, not in pods. For each ready built-in step the controller
calls a `BuiltinRunner` (by default `controllers.pipeline_builtin.run_builtin`) on every pass
until it answers Done or Failed; the runner is level-based itself (deterministic object
names, create → 409 → adopt), so calling it again after a restart is safe. It sees the run
with this pass's step states and every other step as a `StepResult` (snapshot spec, outputs,
metrics, image digest, inputs as resolved, Models produced).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any, Protocol

from mlkube.api.pipeline_step import Step
from mlkube.builders.pipeline_outcome import (
    BuiltinOutcome,
    Done,
    Failed,
    ResolvedInput,
    StepOutput,
    StepResult,
)
from mlkube.controllers.kube import Kube
from mlkube.controllers.pipeline_cache import input_digest
from mlkube.controllers.pipeline_steps import RunContext, finish, stamp
from mlkube.controllers.pipeline_store import StoreUnreadable


class BuiltinRunner(Protocol):
    def __call__(
        self,
        kube: Kube,
        run: Mapping[str, Any],
        step: Mapping[str, Any],
        upstream: Mapping[str, StepResult],
        now: datetime.datetime,
    ) -> BuiltinOutcome: ...


def _inputs(ctx: RunContext, step: Step) -> list[ResolvedInput]:
    """The step's inputs as recorded in the run (uri inputs with their declared or computed
    digest; upstream outputs with their recorded digests)."""
    found = []
    for i in step.inputs:
        if i.uri is not None:
            # Undeclared digest: the one the step was started with (memoised by listing
            # fingerprint, pipeline_cache.input_digest), so lineage records what was read.
            digest = i.digest
            if digest is None:
                with contextlib.suppress(StoreUnreadable):
                    digest = input_digest(ctx.store, ctx.run.namespace, i.uri, ctx.config)
            found.append(ResolvedInput(i.name, "uri", uri=i.uri, digest=digest))
        elif i.model is not None:
            found.append(ResolvedInput(i.name, "model", model=i.model))
        elif i.from_step is not None:
            ref = i.from_step
            recorded = ctx.steps.get(ref.step, {}).get("outputs") or []
            out: dict[str, Any] = next((o for o in recorded if o.get("name") == ref.output), {})
            found.append(ResolvedInput(i.name, "step", uri=out.get("uri"),
                                       digest=out.get("digest"), step=ref.step,
                                       output=ref.output))  # fmt: skip
        elif i.from_parameter is not None:
            found.append(ResolvedInput(i.name, "parameter"))
    return found


def step_result(ctx: RunContext, name: str) -> StepResult:
    st = ctx.steps[name]
    outputs = {
        str(o["name"]): StepOutput(str(o["name"]), o.get("type", "artifact"), uri=o.get("uri"),
                                   digest=o.get("digest"), value=o.get("value"))
        for o in st.get("outputs") or []
    }  # fmt: skip
    step = ctx.step_spec(name)
    produced: tuple[str, ...] = ()
    model = outputs.get("model")
    if step.type == "registerModel" and model is not None and model.value:
        produced = (model.value,)
    return StepResult(
        name=name, phase=str(st.get("phase")), spec=ctx.wire_steps.get(name, {}),
        outputs=outputs, metrics=dict(st.get("metrics") or {}),
        image_digest=st.get("imageDigest"), inputs=tuple(_inputs(ctx, step)),
        produced_models=produced, environment=st.get("environment"),
    )  # fmt: skip


def run_builtin_step(
    ctx: RunContext, step: Step, obj: dict[str, Any], runner: BuiltinRunner
) -> None:
    st = ctx.steps[step.name]
    if st.get("phase") == "Pending":
        st.update(phase="Running", attempts=1)
        st.setdefault("startTime", stamp(ctx.now))
        ctx.events.append(("Normal", "StepStarted", f"step {step.name} ({step.type}) started"))
    view = {**obj, "status": {**(obj.get("status") or {}), "steps": list(ctx.steps.values())}}
    upstream = {n: step_result(ctx, n) for n in ctx.steps if n != step.name}
    outcome = runner(ctx.kube, view, ctx.wire_steps.get(step.name, {}), upstream, ctx.now)
    if isinstance(outcome, Done):
        st["outputs"] = [
            {k: v for k, v in (("name", o.name), ("type", o.type), ("uri", o.uri),
                               ("digest", o.digest), ("value", o.value)) if v is not None}
            for o in outcome.outputs
        ]  # fmt: skip
        st["metrics"] = {k: float(v) for k, v in outcome.metrics.items()}
        st["producedModels"] = list(outcome.produced_models)
        if outcome.cache is not None:  # earlier work reused (registerModel: an equal Model)
            note = outcome.cache
            st["cache"] = {"hit": note.hit, "reason": note.reason[:1024]}
            if note.source_run:
                st["cache"]["sourceRun"] = note.source_run
        finish(ctx, st, "Succeeded", outcome.message)
        ctx.events.append(("Normal", "StepSucceeded", f"step {step.name}: {outcome.message}"))
    elif isinstance(outcome, Failed):
        finish(ctx, st, "Failed", outcome.message)
        ctx.events.append(("Warning", "StepFailed", f"step {step.name}: {outcome.message}"))
    else:
        st["message"] = outcome.message[-1024:]
        ctx.requeue.append(outcome.requeue_after)
