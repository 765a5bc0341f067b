"""The pure decisions the PipelineRun controller needs, in one place (docs/pipelines.md §3-§4).

The controller calls only these functions, so the decision layer (reconcile/pipeline_*.py)
can change behind them: parameters resolved against the snapshot, which steps are ready or
skipped, templates, the cache key, the image digest and the retry backoff.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.pipeline import PipelineSpec, value_error
from mlkube.api.pipeline_step import Step
from mlkube.reconcile import pipeline_cache as keys

FINISHED: Final = ("Succeeded", "Failed", "Skipped", "Cancelled")
_PLACEHOLDER: Final = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise DecisionError(f"{text!r} is not a duration")
    return sum(float(n) * _UNITS[u] for n, u in parts)


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
            if step.type == "container":
                if budget <= 0:
                    continue
                budget -= 1
            out.start.append(step.name)
    return out


def render(text: str, values: Mapping[str, str]) -> str:
    """`{{parameters.X}}`, `{{inputs.X}}`, `{{outputs.X}}`, `{{run.name}}`, `{{run.uid}}`;
    an unknown placeholder is an error naming it."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise DecisionError(f"unknown placeholder {{{{{name}}}}}")
        return values[name]

    return _PLACEHOLDER.sub(one, text)


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
    """Delay before attempt `failed_attempt + 1`: duration * factor^(N-1), at most maxDuration."""
    backoff = step.retry.backoff
    first = duration_seconds(backoff.duration)
    cap = duration_seconds(backoff.max_duration)
    return float(min(cap, first * backoff.factor ** max(0, failed_attempt - 1)))


def when_holds(step: Step, parameters: Mapping[str, str], upstream: Mapping[str, Any]) -> bool:
    """The step's `when` (CEL) over `parameters` and upstream `steps`; no condition: true."""
    if not step.when:
        return True
    import celpy  # only runs that use `when` pay for the CEL evaluator

    env = celpy.Environment()
    program = env.program(env.compile(step.when))
    activation = {"parameters": celpy.json_to_cel(dict(parameters)),
                  "steps": celpy.json_to_cel(dict(upstream))}  # fmt: skip
    try:
        result = program.evaluate(activation)
    except Exception as err:  # celpy raises its own error types for bad expressions
        raise DecisionError(f"when {step.when!r}: {err}") from err
    if not isinstance(result, bool):
        raise DecisionError(f"when {step.when!r} is not a bool")
    return bool(result)
