"""The CEL of rollout metric conditions (pure): compile once, evaluate over three doubles.

docs/rollouts.md §2 "As built". cel-python (as reconcile/pipeline_when): programs compiled once
per text and cached; variables `result`, `candidate`, `stable` are doubles, null when unknown.
Numbers compare equal across int, uint and double (`result == 0`, `0 != result`,
`result in [0, 1]`), as in current CEL (heterogeneous numeric equality): celpy alone has no
double == int overload, which made the natural `result == 0` an Error measurement. A condition
that does not compile, fails, or is not a bool raises `ConditionError` with celpy's message.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import base_functions

from mlkube.reconcile.pipeline_when import cel_reason, quote_when

MAX_CONDITION: Final = 1024

_ENV: Final = celpy.Environment()


class ConditionError(ValueError):
    """A CEL condition that cannot be compiled or evaluated, or is not a bool."""


_NUMBERS: Final = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


def _number(value: object) -> bool:
    return isinstance(value, _NUMBERS) and not isinstance(value, celtypes.BoolType)


def _eq(a: Any, b: Any) -> Any:
    """`==` with numbers equal by value across int, uint and double."""
    if _number(a) and _number(b):
        return celtypes.BoolType(float(a) == float(b))
    return base_functions["_==_"](a, b)


def _ne(a: Any, b: Any) -> Any:
    if _number(a) and _number(b):
        return celtypes.BoolType(float(a) != float(b))
    return base_functions["_!=_"](a, b)


def _in(item: Any, container: Any) -> Any:
    """`in` over a list of numbers, with `_eq`'s equality."""
    numbers = isinstance(container, celtypes.ListType) and all(_number(x) for x in container)
    if _number(item) and numbers:
        return celtypes.BoolType(any(float(x) == float(item) for x in container))
    return base_functions["_in_"](item, container)


_FUNCTIONS: Final = {"_==_": _eq, "_!=_": _ne, "_in_": _in}


@functools.lru_cache(maxsize=256)
def _program(expression: str) -> celpy.Runner:
    if len(expression) > MAX_CONDITION:
        raise ConditionError(f"condition is {len(expression)} characters; at most {MAX_CONDITION}")
    try:
        return _ENV.program(_ENV.compile(expression), functions=_FUNCTIONS)
    except Exception as err:  # CELParseError, lark errors, RecursionError
        column = getattr(err, "column", None)
        where = f"syntax error at column {column}" if column else cel_reason(err).split("\n")[0]
        raise ConditionError(
            f"condition {quote_when(expression)} does not compile: {where}"
        ) from err


def check_condition(expression: str) -> None:
    """ConditionError when the condition could never evaluate (validation may call it)."""
    _program(expression)


def evaluate(
    expression: str, result: float | None, candidate: float | None, stable: float | None
) -> bool:
    """The condition's value over the three doubles; ConditionError when it fails."""
    program = _program(expression)
    variables = {"result": result, "candidate": candidate, "stable": stable}
    try:
        activation = {k: json_to_cel(None if v is None else float(v)) for k, v in variables.items()}
        value = program.evaluate(activation)
    except Exception as err:  # CELEvalError, TypeError, RecursionError, ...
        raise ConditionError(
            f"condition {quote_when(expression)} failed: {cel_reason(err)}"
        ) from err
    if isinstance(value, Exception):  # celpy returns some errors as values
        raise ConditionError(f"condition {quote_when(expression)} failed: {cel_reason(value)}")
    if not isinstance(value, celtypes.BoolType):
        kind = type(value).__name__.removesuffix("Type").lower()
        raise ConditionError(f"condition {quote_when(expression)} is a {kind}, not a bool")
    return bool(value)
