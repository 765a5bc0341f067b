"""The pure decisions the PipelineRun controller needs, in one place (docs/pipelines.md §3-§4).

The controller calls only these functions, so the decision layer (reconcile/pipeline_*.py)
can change behind them: parameters resolved against the snapshot, which steps are ready or
skipped, templates, the cache key, the image digest and the retry backoff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.duration import parse_duration
from mlkube.api.pipeline import PipelineSpec, value_error
from mlkube.api.pipeline_step import Step
from mlkube.reconcile import pipeline_cache as keys
from mlkube.reconcile import pipeline_params as params
from mlkube.reconcile.pipeline_retry import backoff_delay
from mlkube.reconcile.pipeline_when import WhenError, evaluate_when, step_view

FINISHED: Final = ("Succeeded", "Failed", "Skipped", "Cancelled")


# A step skipped without a failure (its `when`, or a when-skipped producer): steps that only
# order after it (dependsOn) still run; the message prefix is how a later pass tells.
BENIGN: Final = "skipped: "


class DecisionError(ValueError):
    """A run or step cannot go on as specified (the message says why)."""


def resolve_parameters(spec: PipelineSpec, given: Mapping[str, str]) -> dict[str, str]:
    """Values with defaults filled in; unknown, missing or mistyped ones are an error."""
    declared = {p.name: p for p in spec.parameters}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DecisionError(f"unknown parameters: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, param in declared.items():
        value = given.get(name, param.default)
        if value is None:
            raise DecisionError(f"parameter {name} is required (it has no default)")
        problem = value_error(param.type, value)
        if problem:
            raise DecisionError(f"parameter {name}: {problem}")
        values[name] = value
    return values


def duration_seconds(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as err:
        raise DecisionError(f"{text!r} is not a duration") from err


@dataclass(frozen=True)
class Plan:
    """What the DAG allows now: steps to start (in order) and steps to skip (with why)."""

    start: list[str] = field(default_factory=list)
    skip: dict[str, str] = field(default_factory=dict)


def _blocked(step: Step, phases: Mapping[str, str], continue_on: Mapping[str, bool]) -> str | None:
    for dep in step.dependencies():
        phase = phases.get(dep, "Pending")
        if phase in ("Failed", "Cancelled"):
            return f"upstream step {dep} {phase.lower()}"
        if phase == "Skipped" and not continue_on.get(f"when:{dep}"):
            return f"upstream step {dep} was skipped"
    return None


def plan(
    spec: PipelineSpec, phases: Mapping[str, str], skipped_by_when: set[str], running: int
) -> Plan:
    """Ready steps (every dependency Succeeded, or Skipped by its own `when`) in name order up
    to `parallelism`; steps below a failed, cancelled or skipped (not by when) step are skipped."""
    out = Plan()
    allowed = {f"when:{name}": True for name in skipped_by_when}
    budget = spec.parallelism - running
    for step in sorted(spec.steps, key=lambda s: s.name):
        if phases.get(step.name, "Pending") != "Pending":
            continue
        why = _blocked(step, phases, allowed)
        if why is not None:
            out.skip[step.name] = why
            continue
        deps = step.dependencies()
        if all(phases.get(d) in ("Succeeded", "Skipped") for d in deps):
            consumed = sorted({ref.step for _, ref in step.references()})
            gone = next((d for d in consumed if phases.get(d) == "Skipped"), None)
            if gone is not None:
                out.skip[step.name] = f"{BENIGN}needs outputs of step {gone}, which was skipped"
                continue
            if step.type == "container":
                if budget <= 0:
                    continue
                budget -= 1
            out.start.append(step.name)
    return out


def render(text: str, values: Mapping[str, str]) -> str:
    """Templates (reconcile/pipeline_params.py); an unknown placeholder is an error naming it."""
    try:
        return params.render(text, values)
    except params.TemplateError as err:
        raise DecisionError(str(err)) from err


def cache_key(
    *,
    namespace: str,
    image_digest: str,
    command: list[str],
    args: list[str],
    env: list[dict[str, Any]],
    inputs: Mapping[str, str],
    outputs: list[tuple[str, str]],
    version: str,
    parameters: Mapping[str, str],
    ignored_inputs: list[str],
) -> str:
    return keys.cache_key(
        namespace=namespace, image_digest=image_digest, command=command, args=args, env=env,
        inputs=inputs, outputs=outputs, version=version, parameters=parameters,
        ignored_inputs=ignored_inputs,
    )  # fmt: skip


def image_digest(image: str, known: Iterable[tuple[str, str]]) -> tuple[str | None, str]:
    """(digest, "") when the image is pinned or listed, else (None, why it is uncacheable)."""
    return keys.resolve_image_digest(image, known)


def backoff_seconds(step: Step, failed_attempt: int) -> float:
    """Delay before attempt `failed_attempt + 1` (reconcile/pipeline_retry.py)."""
    return backoff_delay(step.retry.backoff, failed_attempt).total_seconds()


def when_holds(
    step: Step,
    declared: Any,
    parameters: Mapping[str, str],
    upstream: Mapping[str, Mapping[str, Any]],
) -> bool:
    """The step's `when` over typed `parameters` and upstream steps (reconcile/pipeline_when)."""
    if not step.when:
        return True
    try:
        typed = params.typed_parameters(declared, parameters)
        views = {name: step_view(st) for name, st in upstream.items()}
        return evaluate_when(step.when, typed, views)
    except (WhenError, params.ParameterError) as err:
        raise DecisionError(str(err)) from err
