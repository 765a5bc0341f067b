"""kstatus's Reconciling/Stalled as mlkube sets them: never both True, each with the generation
it describes, mirrored from Progressing/Degraded only on kinds that have them."""

from __future__ import annotations

from mlkube.builders.model_retry import build_retrying_status
from mlkube.builders.model_status import build_verifying_status
from mlkube.reconcile.conditions import get_condition, set_condition
from mlkube.reconcile.kstatus import kstatus_conditions, with_stalled

NOW = "2026-01-01T00:00:00Z"


def state(conditions: list[dict[str, object]]) -> dict[str, str]:
    return {str(c["type"]): str(c["status"]) for c in conditions}


def endpoint_conditions(progressing: bool, degraded: bool) -> list[dict[str, object]]:
    conds = set_condition(None, type_="Progressing", status=progressing, reason="RollingOut",
                          message="rolling", generation=2, now=NOW)  # fmt: skip
    return set_condition(conds, type_="Degraded", status=degraded, reason="ModelFailed",
                         message="Model x failed", generation=2, now=NOW)  # fmt: skip


def test_progressing_becomes_reconciling_and_degraded_stalled() -> None:
    rolling = with_stalled(endpoint_conditions(True, False), 2, NOW)
    assert state(rolling) == {"Progressing": "True", "Degraded": "False", "Reconciling": "True"}
    reconciling = get_condition(rolling, "Reconciling") or {}
    assert (reconciling["reason"], reconciling["observedGeneration"]) == ("RollingOut", 2)
    failed = with_stalled(endpoint_conditions(False, True), 2, NOW)
    # Reconciling was never True here: it is not added, Stalled carries the reason.
    assert state(failed) == {"Progressing": "False", "Degraded": "True", "Stalled": "True"}
    back = with_stalled(endpoint_conditions(False, False), 3, NOW)
    assert "Stalled" not in state(back)
    after = with_stalled(endpoint_conditions(False, False), 3, NOW + "x")
    assert after == back


def test_stalled_wins_when_both_progressing_and_degraded() -> None:
    both = with_stalled(endpoint_conditions(True, True), 2, NOW)
    assert state(both)["Stalled"] == "True"
    assert state(both).get("Reconciling", "False") == "False"


def test_a_kind_without_progressing_keeps_its_own_reconciling() -> None:
    own = set_condition(None, type_="Reconciling", status=True, reason="ModelNotReady",
                        message="verifying", generation=1, now=NOW)  # fmt: skip
    assert with_stalled(own, 1, NOW) == own


def test_kstatus_conditions_for_each_state() -> None:
    for name, want in (
        ("working", {"Reconciling": "True", "Stalled": "False"}),
        ("stalled", {"Reconciling": "False", "Stalled": "True"}),
        ("done", {"Reconciling": "False", "Stalled": "False"}),
    ):
        conds = kstatus_conditions(None, state=name, reason="Why", message="m", generation=5,
                                   now=NOW)  # fmt: skip
        assert state(conds) == want, name
        assert {c["observedGeneration"] for c in conds} == {5}


def test_verifying_and_retrying_models_are_reconciling() -> None:
    verifying = build_verifying_status(generation=1, previous=None, now=NOW)
    retrying = build_retrying_status(generation=1, error="store down", attempt=0, delay=10,
                                     previous=None, now=NOW)  # fmt: skip
    for status in (verifying, retrying):
        assert state(status["conditions"]) == {
            "Ready": "False", "Reconciling": "True", "Stalled": "False"
        }  # fmt: skip
