"""Standard metav1.Condition bookkeeping, so every kind reports health the same way.

Argo CD and Flux read `Ready` (plus `Progressing`/`Degraded`) without custom scripts, and
`lastTransitionTime` must only move when the status actually flips. Messages are bounded here
(`bound_message`), so no writer (builders, the drift monitor) can exceed the CRD's maxLength.
"""

from __future__ import annotations

from typing import Any

from mlkube.api.common import bound_message

Condition = dict[str, Any]


def set_condition(
    conditions: list[Condition] | None,
    *,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """Return a new list with `type_` set (None: Unknown); keep lastTransitionTime if the
    status is unchanged."""
    value = "Unknown" if status is None else "True" if status else "False"
    result: list[Condition] = []
    replaced = False
    for cond in conditions or []:
        if cond.get("type") != type_:
            result.append(dict(cond))
            continue
        replaced = True
        moved = cond.get("status") != value
        result.append(
            _condition(
                type_,
                value,
                reason,
                message,
                generation,
                now if moved else cond.get("lastTransitionTime", now),
            )
        )
    if not replaced:
        result.append(_condition(type_, value, reason, message, generation, now))
    return result


def get_condition(conditions: list[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def _condition(
    type_: str, status: str, reason: str, message: str, generation: int | None, transition: str
) -> Condition:
    cond: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": bound_message(message),
        "lastTransitionTime": transition,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond
