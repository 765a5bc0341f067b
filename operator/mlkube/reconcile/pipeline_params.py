"""Run parameters and step templates (pure): typed values, `{{...}}` rendering.

Parameter values travel as text (the run spec, schedules, triggers, MLKUBE_PARAM_<NAME>); the
declared type is checked when a run starts (`PipelineSpec.resolve_parameters`, with the CRD's
patterns), and the typed values here are what `when` conditions see. A template
is rendered only from what the step is allowed to name (its own inputs and outputs, the run's
parameters, run.name and run.uid), so an unknown placeholder is an error naming it rather than
text passed on to the program.

    typed_parameters(declared, values) -> name → int | float | bool | str
    render(text, values) -> str (TemplateError names the first unknown placeholder)
    render_env(env, values) -> env entries with their values rendered
    template_values(parameters=, inputs=, outputs=, run_name=, run_uid=) -> placeholder → text
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Final, Protocol

from mlkube.api.pipeline import value_error
from mlkube.api.pipeline_refs import PLACEHOLDER_PATTERN

_PLACEHOLDER: Final = re.compile(PLACEHOLDER_PATTERN)
Typed = int | float | bool | str


class ParameterError(ValueError):
    """A parameter value is not of its declared type."""


class TemplateError(ValueError):
    """A template names a placeholder that has no value."""


class _Declared(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


def typed_value(type_: str, value: str) -> Typed:
    """`value` as its declared type; ParameterError when it is not one."""
    problem = value_error(type_, value)
    if problem:
        raise ParameterError(problem)
    if type_ == "integer":
        return int(value)
    if type_ == "number":
        number = float(value)
        if not math.isfinite(number):
            raise ParameterError(f"{value!r} is not a finite number")
        return number
    if type_ == "boolean":
        return value == "true"
    return value


def typed_parameters(declared: Iterable[_Declared], values: Mapping[str, str]) -> dict[str, Typed]:
    """Resolved values as ints, floats, bools and strings (undeclared ones stay text)."""
    types = {p.name: p.type for p in declared}
    out: dict[str, Typed] = {}
    for name, value in values.items():
        try:
            out[name] = typed_value(types.get(name, "string"), value)
        except ParameterError as err:
            raise ParameterError(f"parameter {name}: {err}") from err
    return out


def template_values(
    *,
    parameters: Mapping[str, str],
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    run_name: str,
    run_uid: str,
) -> dict[str, str]:
    """placeholder body → text: `parameters.X`, `inputs.X` (local path or value),
    `outputs.X` (local path), `run.name`, `run.uid`."""
    values = {"run.name": run_name, "run.uid": run_uid}
    for prefix, source in (("parameters", parameters), ("inputs", inputs), ("outputs", outputs)):
        values.update({f"{prefix}.{k}": v for k, v in source.items()})
    return values


def render(text: str, values: Mapping[str, str]) -> str:
    """Every `{{ body }}` replaced by values[body]; rendering is one pass (a value containing
    `{{...}}` is not rendered again). Raises TemplateError naming the unknown placeholder."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        if body not in values:
            raise TemplateError(f"unknown template placeholder {{{{{body}}}}}")
        return values[body]

    return _PLACEHOLDER.sub(one, text)


def render_env(
    env: Iterable[Mapping[str, object]], values: Mapping[str, str]
) -> list[dict[str, object]]:
    """Env entries (wire form) with `value` rendered; `valueFrom` entries are kept as they are."""
    out = []
    for entry in env:
        item = dict(entry)
        if isinstance(item.get("value"), str):
            item["value"] = render(str(item["value"]), values)
        out.append(item)
    return out
