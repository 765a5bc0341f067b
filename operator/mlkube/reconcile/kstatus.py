"""kstatus's `Reconciling` and `Stalled` conditions (pure).

kstatus (Flux's health checks, Helm 4 `--wait`, kpt) reads a custom resource through
`Reconciling` (InProgress) and `Stalled` (Failed) and, failing both, `Ready`; every other
condition it ignores. `with_stalled` mirrors `Degraded` ("only a human can fix this": a name
conflict, an invalid spec, a failed Model or rollout) into Stalled, and `Progressing` (a rollout
or a wait under way) into Reconciling; `kstatus_conditions` sets both directly for kinds without
Degraded/Progressing (the Model). Stalled and Reconciling are never True together: kstatus
would take whichever comes first. A mirrored condition appears the first time it is True and
then stays, flipping back to False, so a healthy object carries no extra noise.
"""

from __future__ import annotations

from mlkube.reconcile.conditions import Condition, get_condition, set_condition

STALLED = "Stalled"
RECONCILING = "Reconciling"


def with_stalled(conditions: list[Condition], generation: int | None, now: str) -> list[Condition]:
    """Stalled from Degraded; Reconciling from Progressing (only while not Stalled) when the
    kind has Progressing (the BatchEndpoint sets its own Reconciling)."""
    degraded = get_condition(conditions, "Degraded") or {}
    progressing = get_condition(conditions, "Progressing")
    stalled = degraded.get("status") == "True"
    mirrors = [(STALLED, degraded, stalled)]
    if progressing is not None:
        moving = not stalled and progressing.get("status") == "True"
        mirrors.append((RECONCILING, progressing, moving))
    for type_, source, on in mirrors:
        if not on and get_condition(conditions, type_) is None:
            continue
        conditions = set_condition(
            conditions,
            type_=type_,
            status=on,
            reason=str(source.get("reason") or "AsExpected") if on else "AsExpected",
            message=str(source.get("message") or "") if on else "",
            generation=generation,
            now=now,
        )
    return conditions


def kstatus_conditions(
    conditions: list[Condition] | None,
    *,
    state: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """Reconciling and Stalled for `state`: "working", "stalled" or "done"."""
    out = list(conditions or [])
    for type_, on in ((RECONCILING, state == "working"), (STALLED, state == "stalled")):
        out = set_condition(
            out,
            type_=type_,
            status=on,
            reason=reason if on else "AsExpected",
            message=message if on else "",
            generation=generation,
            now=now,
        )
    return out
