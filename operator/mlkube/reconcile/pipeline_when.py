"""A step's `when` condition: CEL over the run's parameters and its upstream steps (pure).

cel-python (`celpy`) is an interpreter running inside the operator, so an expression is bounded
before it runs: at most MAX_WHEN characters (the CRD's limit, checked again because a snapshot
is read back from a ConfigMap), no comprehension (`map`, `filter`, `all`, `exists`,
`exists_one`) nested inside another (the only way a short CEL text does quadratic or worse
work), and the evaluation's every failure — parse errors, evaluation errors (celpy returns some
as values and raises others), recursion on deeply nested parentheses — becomes a `WhenError`
whose message the step fails with. Compiled programs are memoised by their text.

Variables (docs/pipelines.md §1): `parameters` (name → typed value, reconcile/pipeline_params)
and `steps` (upstream step name → {phase, outputs: {name: value or uri}, metrics: {name: number}}).

    check_when(expression) -> None (raises WhenError)
    evaluate_when(expression, parameters, steps) -> bool (raises WhenError)
    step_view(status_step) -> the `steps[name]` value for one status.steps[] entry
    quote_when(expression) -> the expression as messages quote it (cut at 80 characters)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from lark import Token, Tree

MAX_WHEN: Final = 1024
MAX_COMPREHENSION_NESTING: Final = 1
COMPREHENSIONS: Final = frozenset({"map", "filter", "all", "exists", "exists_one"})


class WhenError(ValueError):
    """The condition cannot be compiled or evaluated, or is not a bool."""


def _nesting(tree: Tree[Any]) -> int:
    """The deepest nesting of comprehension macros in a parse tree (iterative: the tree of a
    1 KiB expression can be thousands of levels deep)."""
    deepest = 0
    stack: list[tuple[Tree[Any] | Token, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if node.data == "member_dot_arg" and any(
            isinstance(c, Token) and str(c) in COMPREHENSIONS for c in node.children
        ):
            depth += 1
            deepest = max(deepest, depth)
        stack.extend((child, depth) for child in node.children)
    return deepest


# One environment for every expression; creating it raises the interpreter's recursion limit to
# 2500 (celpy's own minimum for CEL), once, at import rather than in the middle of some pass.
_ENV: Final = celpy.Environment()


@functools.lru_cache(maxsize=256)
def _program(expression: str) -> celpy.Runner:
    if len(expression) > MAX_WHEN:
        raise WhenError(f"when is {len(expression)} characters long; at most {MAX_WHEN} allowed")
    env = _ENV
    try:
        tree = env.compile(expression)
    except Exception as err:  # CELParseError, lark errors, RecursionError
        column = getattr(err, "column", None)
        where = f"syntax error at column {column}" if column else _first_line(err)
        raise WhenError(f"when {quote_when(expression)} does not compile: {where}") from err
    if _nesting(tree) > MAX_COMPREHENSION_NESTING:
        raise WhenError(
            f"when {quote_when(expression)} nests a comprehension (map, filter, all, exists)"
            " inside another; use at most one level"
        )
    try:
        return env.program(tree)
    except Exception as err:
        raise WhenError(
            f"when {quote_when(expression)} does not compile: {_first_line(err)}"
        ) from err


def quote_when(expression: str) -> str:
    """The expression as messages quote it: at most 80 characters (status messages are
    bounded, and the error must stay readable)."""
    return repr(expression if len(expression) <= 80 else expression[:77] + "...")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def check_when(expression: str) -> None:
    """Raise WhenError when the expression would never evaluate (too long, bad syntax,
    nested comprehensions); the run's start calls it for every step."""
    _program(expression)


def evaluate_when(
    expression: str, parameters: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]]
) -> bool:
    """The condition's value; WhenError when it fails or is not a bool."""
    program = _program(expression)
    try:
        activation = {
            "parameters": json_to_cel(dict(parameters)),
            "steps": json_to_cel({k: dict(v) for k, v in steps.items()}),
        }
        result = program.evaluate(activation)
    except Exception as err:  # CELEvalError, TypeError, RecursionError, ...
        raise WhenError(f"when {quote_when(expression)} failed: {cel_reason(err)}") from err
    if isinstance(result, Exception):  # celpy returns some errors as values
        raise WhenError(f"when {quote_when(expression)} failed: {cel_reason(result)}")
    if not isinstance(result, celtypes.BoolType):
        kind = type(result).__name__.removesuffix("Type").lower()
        article = "an" if kind[:1] in "aeiou" else "a"
        raise WhenError(f"when {quote_when(expression)} is {article} {kind}, not a bool")
    return bool(result)


# celpy names operators by grammar rule and types by class; messages use CEL's own words.
_OPERATORS: Final = {
    "relation_eq": "==", "relation_ne": "!=", "relation_lt": "<", "relation_le": "<=",
    "relation_gt": ">", "relation_ge": ">=", "relation_in": "in", "addition_add": "+",
    "addition_sub": "-", "multiplication_mul": "*", "multiplication_div": "/",
    "multiplication_mod": "%", "unary_not": "!", "unary_neg": "-",
}  # fmt: skip
_RULE: Final = re.compile(r"Token\('RULE', '(\w+)'\)")
_CLASS: Final = re.compile(r"<class 'celpy\.celtypes\.(\w+?)(?:Type)?'>")


def cel_reason(err: BaseException) -> str:
    """A celpy error in CEL's words (operators, type names); rollout conditions use it too."""
    text = err.args[0] if err.args and isinstance(err.args[0], str) else _first_line(err)
    text = _RULE.sub(lambda m: _OPERATORS.get(m.group(1), m.group(1)), text)
    text = _CLASS.sub(lambda m: m.group(1).lower(), text)
    return text.replace("applied to '(", "applied to (").replace(")'", ")")


def step_view(status_step: Mapping[str, Any]) -> dict[str, Any]:
    """`steps[name]` for an upstream step: its phase, outputs (a parameter's value, else the
    uri) and metrics."""
    outputs = {}
    for out in status_step.get("outputs") or []:
        value = out.get("value") if out.get("type") == "parameter" else out.get("uri")
        outputs[str(out.get("name"))] = "" if value is None else str(value)
    metrics = {str(k): float(v) for k, v in (status_step.get("metrics") or {}).items()}
    return {
        "phase": str(status_step.get("phase") or "Pending"),
        "outputs": outputs,
        "metrics": metrics,
    }
