"""Reading the answers of the Prometheus and web measurement providers (pure).

Prometheus: an instant query's `data` must be a scalar or a vector of at most one series;
an empty vector or NaN is no data, several series an error that names the count (a query
that should be aggregated), anything else (matrix, string, an `error` status) an error.
Web: the number at a small JSONPath subset, `$`, `.name`, `['name']` and `[index]`
(e.g. `$.data.result[0].value`); a number or a numeric string is the value. Infinite values
are errors: the status stores measurements as JSON, which has no infinity.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from mlkube.reconcile.rollout_measure import RawMeasurement, provider_error

_STEP: Final = re.compile(
    r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^'\]]*)'\]|\[\"([^\"\]]*)\"\]"
)
MAX_SHOWN: Final = 80  # characters of a bad value echoed in an error


class JsonPathError(ValueError):
    """A jsonPath outside the supported subset."""


def parse_json_path(path: str) -> list[str | int]:
    """`$.a.b[0]['c d']` -> ["a", "b", 0, "c d"]."""
    text = path.strip()
    if not text.startswith("$"):
        raise JsonPathError(f"jsonPath {path!r} must start with '$'")
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None:
            raise JsonPathError(
                f"jsonPath {path!r}: unsupported at {text[pos:]!r} "
                "(supported: $, .name, ['name'], [index])"
            )
        name, index, quoted, double = match.groups()
        steps.append(int(index) if index is not None else (name or quoted or double or ""))
        pos = match.end()
    return steps


def at_path(doc: Any, steps: list[str | int]) -> tuple[bool, Any]:
    """(found, value) of `steps` in a parsed JSON document."""
    node = doc
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return False, None
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return False, None
            node = node[step]
    return True, node


def as_number(value: Any) -> tuple[float | None, str | None]:
    """(number, None), (None, None) for NaN (no data) or (None, why not a number)."""
    if isinstance(value, bool):
        return None, f"{value!r} is a boolean, not a number"
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None, f"{value[:MAX_SHOWN]!r} is not a number"
    else:
        return None, f"a JSON {type(value).__name__} is not a number"
    if math.isnan(number):
        return None, None
    if math.isinf(number):
        return None, f"{value!r} is not a finite number"
    return number, None


def _measured(value: Any, what: str) -> RawMeasurement:
    number, problem = as_number(value)
    if problem is not None:
        return provider_error(f"{what}: {problem}")
    if number is None:
        return RawMeasurement(message=f"{what}: NaN (no data)")
    return RawMeasurement(candidate=number, candidate_samples=1, message=what)


def prometheus_measure(doc: Any) -> RawMeasurement:
    """The measurement an instant query's JSON answer gives."""
    if not isinstance(doc, dict):
        return provider_error("Prometheus answer is not a JSON object")
    if doc.get("status") != "success":
        error_type = str(doc.get("errorType") or "error")[:MAX_SHOWN]
        why = str(doc.get("error"))[:200]
        return provider_error(f"Prometheus query failed ({error_type}): {why}")
    data = doc.get("data")
    if not isinstance(data, dict):
        return provider_error("Prometheus answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        if not isinstance(result, list) or len(result) != 2:
            return provider_error("Prometheus scalar is not [time, value]")
        return _measured(result[1], "Prometheus scalar")
    if kind != "vector":
        shown = str(kind)[:MAX_SHOWN]
        return provider_error(f"Prometheus query returned a {shown}; need a scalar or a vector")
    if not isinstance(result, list):
        return provider_error("Prometheus vector is not a list")
    if not result:
        return RawMeasurement(message="Prometheus query returned no series (no data)")
    if len(result) > 1:
        return provider_error(
            f"Prometheus query returned {len(result)} series; aggregate it to one (e.g. sum(...))"
        )
    sample = result[0].get("value") if isinstance(result[0], dict) else None
    if not isinstance(sample, list) or len(sample) != 2:
        return provider_error("Prometheus vector sample is not [time, value]")
    return _measured(sample[1], "Prometheus vector")


def web_measure(doc: Any, json_path: str) -> RawMeasurement:
    """The measurement at `json_path` of a web provider's JSON answer."""
    try:
        steps = parse_json_path(json_path)
    except JsonPathError as err:
        return provider_error(str(err))
    found, value = at_path(doc, steps)
    if not found:
        return provider_error(f"nothing at {json_path} in the answer")
    if value is None:
        return RawMeasurement(message=f"{json_path} is null (no data)")
    return _measured(value, json_path)
