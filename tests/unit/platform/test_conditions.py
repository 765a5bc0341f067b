from __future__ import annotations

from mlkube.builders.model_status import Verification, build_model_status
from mlkube.reconcile.conditions import get_condition, set_condition


def test_set_condition_keeps_transition_time_when_status_unchanged() -> None:
    first = set_condition(
        None, type_="Ready", status=True, reason="A", message="m", generation=1, now="t1"
    )
    second = set_condition(
        first, type_="Ready", status=True, reason="B", message="n", generation=2, now="t2"
    )
    assert second == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "B",
            "message": "n",
            "lastTransitionTime": "t1",
            "observedGeneration": 2,
        }
    ]


def test_set_condition_moves_transition_time_on_flip_and_keeps_others() -> None:
    conds = [{"type": "Other", "status": "True"}]
    conds = set_condition(
        conds, type_="Ready", status=True, reason="A", message="", generation=None, now="t1"
    )
    conds = set_condition(
        conds, type_="Ready", status=False, reason="B", message="x", generation=None, now="t2"
    )
    assert conds[0] == {"type": "Other", "status": "True"}
    ready = get_condition(conds, "Ready")
    assert ready is not None
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", "t2")
    assert get_condition(conds, "Missing") is None


def test_model_status_ready_and_failed() -> None:
    ok = build_model_status(
        generation=3,
        verification=Verification(digest="sha256:" + "a" * 64, size=10, file_count=2),
        previous=None,
        now="2026-01-01T00:00:00Z",
    )
    assert ok == {
        "phase": "Ready",
        "observedGeneration": 3,
        "message": "artifact verified",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Verified",
                "message": "artifact verified",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 3,
            },
            *(
                {
                    "type": type_,
                    "status": "False",
                    "reason": "AsExpected",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "observedGeneration": 3,
                }
                for type_ in ("Reconciling", "Stalled")
            ),
        ],
        "artifact": {
            "digest": "sha256:" + "a" * 64,
            "size": 10,
            "fileCount": 2,
            "verifiedAt": "2026-01-01T00:00:00Z",
        },
    }
    failed = build_model_status(
        generation=4,
        verification=Verification(error="boom", reason="DigestMismatch"),
        previous=ok,
        now="2026-01-02T00:00:00Z",
    )
    assert failed["phase"] == "Failed"
    assert "artifact" not in failed
    assert failed["conditions"][0]["reason"] == "DigestMismatch"
    assert failed["conditions"][0]["lastTransitionTime"] == "2026-01-02T00:00:00Z"
    stalled = failed["conditions"][2]  # what kstatus reads as Failed
    assert (stalled["type"], stalled["status"], stalled["reason"]) == (
        "Stalled", "True", "DigestMismatch"
    )  # fmt: skip
    assert stalled["observedGeneration"] == 4
