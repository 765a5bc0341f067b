"""Typed `Pipeline` parameters: declarations, and the text forms their values must have.

Values travel as text everywhere (defaults, run, schedule and trigger values, env vars,
templates); the type is a check on that text, done by one pattern per type that CEL and
`value_error` share, so the API server and the operator refuse the same values.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from mlkube.api.common import ApiModel, ShortText
from mlkube.api.markers import Rule
from mlkube.api.pipeline_blocks import Identifier

ParameterType = Literal["string", "integer", "number", "boolean"]
PARAMETER_TYPES: tuple[str, ...] = get_args(ParameterType)
MAX_PARAMETERS = 64
MAX_PARAMETER_VALUE = 4096
# The text forms a typed parameter value must have (CEL and pydantic use the same patterns).
VALUE_PATTERNS = {
    "integer": r"^[-+]?[0-9]+$",
    "number": r"^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$",
    "boolean": r"^(true|false)$",
}
MSG_DEFAULT_TYPE = "parameter default must be a value of the parameter's type"

ParameterValue = Annotated[str, Field(max_length=MAX_PARAMETER_VALUE)]
ParameterValues = Annotated[dict[str, ParameterValue], Field(max_length=MAX_PARAMETERS)]


def value_error(type_: str, value: str) -> str | None:
    """Why `value` is not a `type_` parameter value, or None when it is."""
    pattern = VALUE_PATTERNS.get(type_)
    if pattern is None or re.fullmatch(pattern, value):
        return None
    return f"{value!r} is not a {type_}"


class Parameter(ApiModel):
    """A typed pipeline parameter; values are text, checked against the type."""

    kube_validations = (
        Rule(
            "!has(self.default) || "
            + " && ".join(
                f"(self.type != '{t}' || self.default.matches('{p}'))"
                for t, p in VALUE_PATTERNS.items()
            ),
            message=MSG_DEFAULT_TYPE,
            field_path=".default",
        ),
    )

    name: Identifier
    """Parameter name: {{parameters.NAME}}, MLKUBE_PARAM_<NAME>, parameters.NAME in when."""
    type: ParameterType = "string"
    """string (default), integer, number or boolean (values are written as text)."""
    default: ParameterValue | None = None
    """Value when a run gives none; a parameter without default is required at run time."""
    description: ShortText | None = None
    """What the parameter means."""

    @model_validator(mode="after")
    def _typed_default(self) -> Parameter:
        problem = None if self.default is None else value_error(self.type, self.default)
        if problem:
            raise ValueError(f"parameter {self.name}: {MSG_DEFAULT_TYPE} ({problem})")
        return self
