"""kstatus's `Stalled` condition, mirrored from `Degraded` (pure).

kstatus (kpt, Flux's health checks, `kubectl wait`-style tooling) reads a custom resource
through `Reconciling` and `Stalled`; `Ready=False` alone counts as Current. Degraded already
means "only a human can fix this" (a name conflict, an invalid spec, a failed Model or
rollout), which is exactly Stalled, so Stalled copies it. It appears the first time it is True
and then stays, flipping back to False, so a healthy endpoint carries no extra noise.
"""

from __future__ import annotations

from mlkube.reconcile.conditions import Condition, get_condition, set_condition

STALLED = "Stalled"


def with_stalled(conditions: list[Condition], generation: int | None, now: str) -> list[Condition]:
    degraded = get_condition(conditions, "Degraded") or {}
    stalled = degraded.get("status") == "True"
    if not stalled and get_condition(conditions, STALLED) is None:
        return conditions
    return set_condition(
        conditions,
        type_=STALLED,
        status=stalled,
        reason=str(degraded.get("reason") or "AsExpected") if stalled else "AsExpected",
        message=str(degraded.get("message") or "") if stalled else "",
        generation=generation,
        now=now,
    )
