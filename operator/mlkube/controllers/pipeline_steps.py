"""What every step decision of one pass shares (`RunContext`), and a completed attempt.

`record_success` reads a completed attempt's summary (termination message of `outputs`, else
the stored copy), records its outputs and metrics and writes the cache entry the next
identical step will be served from (docs/pipelines.md §3-§4).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.pipeline import PipelineSpec
from mlkube.api.pipeline_run import PipelineRunSpec
from mlkube.api.pipeline_step import Step
from mlkube.builders import pipeline_contract as pc
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pipeline_step import (
    RunRef,
)
from mlkube.controllers import pipeline_cache as cache
from mlkube.controllers import pipeline_decide as decide
from mlkube.controllers.kube import Kube
from mlkube.controllers.pipeline_observe import read_summary
from mlkube.controllers.pipeline_store import StoreUnreadable
from mlkube.reconcile.batch_schedule import format_time

Event = tuple[str, str, str]
WAIT_SECONDS: Final = 5.0
stamp = format_time  # status timestamps: the one formatter, under the name callers use


@dataclass
class RunContext:
    """What every step decision of one reconcile reads, and what it reports."""

    kube: Kube
    config: OperatorConfig
    run: RunRef
    spec: PipelineRunSpec
    pipeline: PipelineSpec
    parameters: dict[str, str]
    store: str
    now: datetime.datetime
    steps: dict[str, dict[str, Any]]  # status.steps[] by name (wire form), edited in place
    events: list[Event] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)
    forced: set[str] = field(default_factory=set)  # rerunSteps and their dependents
    source_steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # resumeFrom
    wire_steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # snapshot, camelCase

    def step_spec(self, name: str) -> Step:
        return next(s for s in self.pipeline.steps if s.name == name)

    def prefix(self, step: str, attempt: int) -> str:
        return pc.attempt_prefix(self.store, self.run.namespace, self.run.name, step, attempt)


def finish(ctx: RunContext, st: dict[str, Any], phase: str, message: str | None) -> None:
    st["phase"] = phase
    st["completionTime"] = stamp(ctx.now)
    st.pop("nextAttemptTime", None)
    if message is not None:
        st["message"] = message[-1024:]
    else:
        st.pop("message", None)


def _outputs_of(summary: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    return list(summary.get("outputs") or []), dict(summary.get("metrics") or {})


def record_success(
    ctx: RunContext, st: dict[str, Any], job: str, attempt: int, not_cached: str | None = None
) -> bool:
    """A completed attempt: its summary's outputs and metrics recorded, the cache entry
    written (unless `not_cached` says why not), the step Succeeded; False when no summary can
    be read."""
    summary = read_summary(ctx.kube, ctx.config, ctx.run.namespace, job,
                           ctx.prefix(st["name"], attempt))  # fmt: skip
    if summary is None:
        return False
    _succeeded(ctx, st, summary, not_cached)
    return True


def _succeeded(
    ctx: RunContext, st: dict[str, Any], summary: dict[str, Any], not_cached: str | None = None
) -> None:
    outputs, metrics = _outputs_of(summary)
    st["outputs"], st["metrics"] = outputs, metrics
    key = (st.get("cache") or {}).get("key")
    step = ctx.step_spec(st["name"])
    if key and not_cached:
        st["cache"] = {**st["cache"], "reason": not_cached}
    elif key and step.cache.enabled:
        try:
            cache.record(
                ctx.store, ctx.run.namespace, key, run=ctx.run.name, step=st["name"],
                outputs=outputs, metrics=metrics,
                max_age_seconds=decide.duration_seconds(step.cache.max_age), now=ctx.now,
                config=ctx.config,
            )  # fmt: skip
        except StoreUnreadable as err:
            ctx.events.append(("Warning", "CacheWriteFailed", f"step {st['name']}: {err}"))
    finish(ctx, st, "Succeeded", None)
    ctx.events.append(("Normal", "StepSucceeded", f"step {st['name']} succeeded"))
