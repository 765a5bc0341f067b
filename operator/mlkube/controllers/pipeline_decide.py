"""The pure decisions the PipelineRun controller needs, in one place (docs/pipelines.md §3-§4).

What starting one step needs from the decision layer (reconcile/pipeline_*.py), with its
errors turned into one `DecisionError` the step's status can show: parameters resolved
against the snapshot, durations, templates, the cache key and the image digest. Which steps
run, retry, skip or stop is the planner's (reconcile/pipeline_plan.py, via pipeline_apply).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mlkube.api.duration import parse_duration
from mlkube.api.pipeline import PipelineSpec, value_error
from mlkube.reconcile import pipeline_cache as keys
from mlkube.reconcile import pipeline_params as params


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


def render(text: str, values: Mapping[str, str]) -> str:
    """Templates (reconcile/pipeline_params.py); an unknown placeholder is an error naming it."""
    try:
        return params.render(text, values)
    except params.TemplateError as err:
        raise DecisionError(str(err)) from err


# The step's cache key, as reconcile/pipeline_cache.py computes it (nothing to convert).
cache_key = keys.cache_key


def image_digest(image: str, known: Iterable[tuple[str, str]]) -> tuple[str | None, str]:
    """(digest, "") when the image is pinned or listed, else (None, why it is uncacheable)."""
    return keys.resolve_image_digest(image, known)
