"""Conditions as the API's `Condition` model, for status builders.

`mlkube.reconcile.conditions` keeps the transition bookkeeping on plain dicts (the drift monitor
and the builders share it); this turns the result into models, so a condition the CRD would
refuse (unknown status, reason not CamelCase, message over the bound) fails while building.
Conditions carried over from an older operator may hold longer messages: they are bounded here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlkube.api.common import Condition, bound_message


def condition_models(conditions: Iterable[Mapping[str, Any]]) -> list[Condition]:
    """Validate every condition, bounding messages written before messages were bounded."""
    out = []
    for cond in conditions:
        doc = dict(cond)
        if isinstance(doc.get("message"), str):
            doc["message"] = bound_message(doc["message"])
        out.append(Condition.model_validate(doc))
    return out
