"""Do a mirrored deployment's predictions agree with the live deployment's?

Runs in the mirror task, never on the live path. Understands the three response shapes the
model servers speak: Open Inference Protocol V2 (`outputs[].data`, matched by output name),
KServe V1 (`predictions`) and Seldon (`data.ndarray` or `data.tensor.values`). Labels, ints,
strings and bools must be equal; when either side is a float the two must be within the
tolerance (absolute or relative, like `math.isclose`). Anything else is "not comparable".
"""

from __future__ import annotations

import math
from typing import Any

import orjson

_MISSING = object()


def extract_predictions(doc: object) -> object:
    """The prediction part of a response document, or `_MISSING` when the shape is unknown."""
    if not isinstance(doc, dict):
        return _MISSING
    outputs = doc.get("outputs")
    if isinstance(outputs, list):
        by_name: dict[str, Any] = {}
        for index, output in enumerate(outputs):
            if not isinstance(output, dict) or "data" not in output:
                return _MISSING
            by_name[str(output.get("name", index))] = output["data"]
        return by_name
    if "predictions" in doc:
        return doc["predictions"]
    data = doc.get("data")
    if isinstance(data, dict):
        if "ndarray" in data:
            return data["ndarray"]
        tensor = data.get("tensor")
        if isinstance(tensor, dict) and "values" in tensor:
            return tensor["values"]
    return _MISSING


def values_agree(left: object, right: object, tolerance: float) -> bool:
    """Structural equality with a float tolerance; bools are labels, not numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, float) or isinstance(right, float):
        if not isinstance(left, int | float) or not isinstance(right, int | float):
            return False
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return math.isclose(left, right, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            values_agree(a, b, tolerance) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            values_agree(left[key], right[key], tolerance) for key in left
        )
    return type(left) is type(right) and left == right


def compare_responses(live: bytes, shadow: bytes, tolerance: float) -> bool | None:
    """True/False when both bodies carry predictions of a known shape, None otherwise."""
    try:
        live_doc = orjson.loads(live)
        shadow_doc = orjson.loads(shadow)
    except orjson.JSONDecodeError:
        return None
    live_pred = extract_predictions(live_doc)
    shadow_pred = extract_predictions(shadow_doc)
    if live_pred is _MISSING or shadow_pred is _MISSING:
        return None
    return values_agree(live_pred, shadow_pred, tolerance)
