"""The hook the PipelineRun controller calls for built-in steps (docs/pipelines.md §4).

`run_builtin` is level-based: the controller calls it on every reconcile of a run while the
step is Running, until it answers `Done` or `Failed`. Every call re-reads what exists (the
Model carrying this run's uid, the endpoint's deployment, BatchJob `<run>-<step>`) and creates
only what is missing, under deterministic names (create → 409 → adopt), so an operator restart
or a lost status write never registers a second Model or scales traffic twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from mlkube.api.duration import parse_duration
from mlkube.builders.pipeline_outcome import BuiltinOutcome, Failed, StepResult
from mlkube.controllers import pipeline_batch, pipeline_deploy, pipeline_evaluate, pipeline_register
from mlkube.controllers.kube import Kube

Handler = Callable[
    [Kube, Mapping[str, Any], Mapping[str, Any], Mapping[str, StepResult]], BuiltinOutcome
]

HANDLERS: dict[str, Handler] = {
    "registerModel": pipeline_register.register_model,
    "evaluate": pipeline_evaluate.evaluate,
    "deploy": pipeline_deploy.deploy,
    "batch": pipeline_batch.batch,
}


def run_builtin(
    kube: Kube,
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    upstream: Mapping[str, StepResult],
    now: datetime,
) -> BuiltinOutcome:
    """Advance built-in `step` of PipelineRun `run` (the object as read) by one level.

    `step` is the step from the run's snapshot in wire form (camelCase). `upstream` holds every
    other step of the run by name (finished ones with outputs); lineage walks it transitively.
    `now` (aware) is compared with `status.steps[].startTime` for the step's `timeout`.
    API errors (`ApiError`) propagate: the controller retries the reconcile.
    """
    handler = HANDLERS.get(str(step.get("type") or ""))
    if handler is None:
        return Failed(f"step type {step.get('type')!r} is not a built-in step", "UnknownStepType")
    overdue = _timed_out(run, step, now)
    if overdue is not None:
        return Failed(overdue, "Timeout")
    return handler(kube, run, step, upstream)


def _timed_out(run: Mapping[str, Any], step: Mapping[str, Any], now: datetime) -> str | None:
    """A message when the step has run longer than its `timeout`, else None."""
    if not step.get("timeout"):
        return None
    try:
        limit = parse_duration(str(step["timeout"])).total_seconds()
    except ValueError as err:
        return f"step {step.get('name')}: timeout {err}"
    for entry in (run.get("status") or {}).get("steps") or []:
        if entry.get("name") == step.get("name") and entry.get("startTime"):
            started = datetime.fromisoformat(str(entry["startTime"]).replace("Z", "+00:00"))
            if (now - started).total_seconds() > limit:
                return (
                    f"step {step.get('name')} did not finish within its timeout {step['timeout']}"
                )
    return None
