"""One container step of a PipelineRun: fold its Jobs into its status, or start it.

`observe` reads what the step's latest attempt did (running, succeeded with a summary, failed:
retry after backoff or fail) and records it; `start` resolves the step (inputs with content
digests, rendered command/args/env, image digest, cache key), serves it from the cache when a
verified entry exists, waits when another run is running the identical step (single flight by
the cache-key label), and otherwise creates the Job of the next attempt (409: adopted).
docs/pipelines.md §3-§4.
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
from mlkube.controllers.pipeline_observe import Attempt, failure_message, read_summary
from mlkube.controllers.pipeline_store import StoreUnreadable

Event = tuple[str, str, str]
WAIT_SECONDS: Final = 5.0


def stamp(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


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


def observe(ctx: RunContext, st: dict[str, Any], attempts: list[Attempt]) -> None:
    """Record what the step's latest attempt did (Running steps, and Pending ones between
    attempts, whose Jobs may have moved since the last pass)."""
    if st.get("phase") in decide.FINISHED or not attempts:
        if st.get("phase") == "Running" and not attempts and st.get("job"):
            _failed_attempt(ctx, st, int(st.get("attempts") or 1), f"Job {st['job']} is gone")
        return
    latest = attempts[-1]
    st["attempts"] = max(int(st.get("attempts") or 0), latest.attempt)
    st["job"] = latest.name
    st.setdefault("startTime", latest.created or stamp(ctx.now))
    if latest.active:
        st["phase"] = "Running"
        st.pop("nextAttemptTime", None)
        return
    if st.get("phase") == "Pending" and st.get("nextAttemptTime"):
        return  # this failure is already recorded; the retry waits for its time
    if latest.finished == "Complete":
        summary = read_summary(ctx.kube, ctx.config, ctx.run.namespace, latest.name,
                               ctx.prefix(st["name"], latest.attempt))  # fmt: skip
        if summary is None:
            _failed_attempt(ctx, st, latest.attempt, "the step finished without a summary")
            return
        _succeeded(ctx, st, summary)
        return
    message = failure_message(ctx.kube, ctx.run.namespace, latest)
    _failed_attempt(ctx, st, latest.attempt, message)


def _succeeded(ctx: RunContext, st: dict[str, Any], summary: dict[str, Any]) -> None:
    outputs, metrics = _outputs_of(summary)
    st["outputs"], st["metrics"] = outputs, metrics
    key = (st.get("cache") or {}).get("key")
    step = ctx.step_spec(st["name"])
    if key and step.cache.enabled:
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


def _failed_attempt(ctx: RunContext, st: dict[str, Any], attempt: int, message: str) -> None:
    step = ctx.step_spec(st["name"])
    if attempt < step.retry.limit + 1:
        delay = decide.backoff_seconds(step, attempt)
        st["phase"] = "Pending"
        st["nextAttemptTime"] = stamp(ctx.now + datetime.timedelta(seconds=delay))
        st["message"] = f"attempt {attempt} failed: {message}"[-1024:]
        ctx.requeue.append(delay)
        ctx.events.append(("Warning", "StepRetrying",
                           f"step {st['name']} attempt {attempt} failed, retrying in "
                           f"{delay:g}s: {message}"[:1024]))  # fmt: skip
        return
    finish(ctx, st, "Failed", message)
    ctx.events.append(("Warning", "StepFailed", f"step {st['name']} failed: {message}"[:1024]))


def retry_due(ctx: RunContext, st: dict[str, Any]) -> bool:
    due = st.get("nextAttemptTime")
    if not due:
        return True
    when = datetime.datetime.fromisoformat(str(due).replace("Z", "+00:00"))
    left = (when - ctx.now).total_seconds()
    if left > 0:
        ctx.requeue.append(left)
        return False
    return True
