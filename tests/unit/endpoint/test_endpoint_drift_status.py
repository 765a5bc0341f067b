"""status.deployments[].drift entries, the DriftDetected condition and the drift Events."""

from __future__ import annotations

import datetime
from typing import Any

from mlkube.api.endpoint import OnlineEndpointStatus
from mlkube.builders.endpoint_drift_status import (
    DriftObservation,
    build_drift_entry,
    drift_condition,
    top_features,
)
from mlkube.builders.endpoint_status import build_endpoint_status
from mlkube.reconcile.drift_episodes import EpisodePolicy

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
POLICY = EpisodePolicy(clear_evaluations=2, cooldown_seconds=0)


def feature(name: str, score: float | None, threshold: float, drifted: bool) -> dict[str, Any]:
    return {
        "name": name,
        "method": "wasserstein",
        "score": score,
        "threshold": threshold,
        "drifted": drifted,
    }


def merged(*, detected: bool, ready: bool = True, samples: int = 200) -> dict[str, Any]:
    features = [
        feature("x0", 0.61234567, 0.1, detected),
        feature("x1", 0.05, 0.1, False),
        feature("c0", None, 0.1, False),
    ]
    return {
        "ready": ready,
        "windowSize": 200,
        "windowSamples": samples,
        "samplesDropped": 3,
        "evaluatedAt": "2026-01-01T11:59:58.123456Z",
        "datasetDrift": {
            "detected": detected,
            "driftedFeatures": int(detected),
            "evaluatedFeatures": 2,
            "ratio": 0.5 if detected else 0.0,
            "share": 0.5,
        },
        "features": features,
        "prediction": {"drifted": False},
    }


def test_top_features_rank_by_score_over_threshold() -> None:
    ranked = top_features(
        [
            feature("a", 0.2, 0.1, True),  # 2.0
            feature("b", 0.9, 0.3, True),  # 3.0
            feature("c", None, 0.1, False),
            feature("d", 0.1, 0.1, True),  # 1.0
        ],
        limit=2,
    )
    assert [f["name"] for f in ranked] == ["b", "a"]
    assert ranked[0] == {
        "name": "b",
        "method": "wasserstein",
        "score": 0.9,
        "threshold": 0.3,
        "drifted": True,
    }


def test_first_drifted_evaluation_starts_an_episode_with_one_event() -> None:
    obs = DriftObservation(merged=merged(detected=True), replicas_reporting=2)
    entry, events = build_drift_entry("blue", obs, None, T0, POLICY)
    message = "dataset drift: 1/2 features drifted (x0); window 200/200 from 2 replicas"
    assert entry == {
        "detected": True,
        "driftedFeatures": 1,
        "evaluatedFeatures": 2,
        "driftedRatio": 0.5,
        "samples": 200,
        "windowSize": 200,
        "samplesDropped": 3,
        "topFeatures": [
            {
                "name": "x0",
                "method": "wasserstein",
                "score": 0.6123,
                "threshold": 0.1,
                "drifted": True,
            },
            {
                "name": "x1",
                "method": "wasserstein",
                "score": 0.05,
                "threshold": 0.1,
                "drifted": False,
            },
        ],
        "predictionDrifted": False,
        "evaluatedAt": "2026-01-01T11:59:58Z",
        "reason": "Evaluated",
        "message": message,
        "replicasReporting": 2,
        "replicasFailed": 0,
        "episode": {"active": True, "clearEvaluations": 0, "startedAt": "2026-01-01T12:00:00.000Z"},
        "observedAt": "2026-01-01T12:00:00Z",
    }
    assert events == [("Warning", "DriftDetected", f"deployment blue: {message}")]
    # Still drifting: no second Event.
    again, events = build_drift_entry("blue", obs, entry, T0, POLICY)
    assert events == [] and again["episode"]["active"]
    assert drift_condition({"blue": again})[:2] == (True, "DriftDetected")
    # Validates against the CRD's status model.
    OnlineEndpointStatus.model_validate(
        {"deployments": [{"name": "blue", "model": "m", "drift": entry}]}
    )


def test_episode_ends_once_after_clean_evaluations() -> None:
    start, _ = build_drift_entry(
        "blue", DriftObservation(merged=merged(detected=True)), None, T0, POLICY
    )
    clean = DriftObservation(merged=merged(detected=False), replicas_reporting=1)
    first, events = build_drift_entry("blue", clean, start, T0, POLICY)
    assert events == [] and first["episode"]["active"] and not first["detected"]
    second, events = build_drift_entry("blue", clean, first, T0, POLICY)
    assert [e[:2] for e in events] == [("Normal", "DriftEnded")]
    assert "no drift in 2 evaluations" in events[0][2]
    assert second["episode"] == {"active": False, "clearEvaluations": 0}
    third, events = build_drift_entry("blue", clean, second, T0, POLICY)
    assert events == []
    assert drift_condition({"blue": third}) == (False, "NoDrift", "no drift episode in blue")


def test_a_filling_window_is_no_evidence() -> None:
    start, _ = build_drift_entry(
        "blue", DriftObservation(merged=merged(detected=True)), None, T0, POLICY
    )
    filling = DriftObservation(merged=merged(detected=False, ready=False, samples=40))
    entry = start
    for _ in range(5):
        entry, events = build_drift_entry("blue", filling, entry, T0, POLICY)
        assert events == []
    assert entry["reason"] == "WindowFilling" and entry["episode"]["active"]
    assert entry["message"].startswith("window 40/200 from 0 replicas")


def test_baseline_missing_is_announced_once_and_keeps_serving() -> None:
    obs = DriftObservation(problem=("DriftBaselineMissing", "Model m has no spec.baseline"))
    entry, events = build_drift_entry("green", obs, None, T0, POLICY)
    assert events == [
        ("Warning", "DriftBaselineMissing", "deployment green: Model m has no spec.baseline")
    ]
    assert entry == {
        "reason": "DriftBaselineMissing",
        "message": "Model m has no spec.baseline",
        "replicasReporting": 0,
        "replicasFailed": 0,
        "episode": {"active": False, "clearEvaluations": 0},
        "observedAt": "2026-01-01T12:00:00Z",
    }
    _, events = build_drift_entry("green", obs, entry, T0, POLICY)
    assert events == []
    assert drift_condition({"green": entry}) == (
        False,
        "DriftBaselineMissing",
        "green: Model m has no spec.baseline",
    )


def test_unreachable_replicas_keep_the_last_numbers() -> None:
    start, _ = build_drift_entry(
        "blue", DriftObservation(merged=merged(detected=True)), None, T0, POLICY
    )
    later = T0 + datetime.timedelta(seconds=30)
    obs = DriftObservation(problem=("NoReplicaReporting", "no Ready replica"), replicas_failed=1)
    entry, events = build_drift_entry("blue", obs, start, later, POLICY)
    assert events == []
    assert entry["detected"] and entry["samples"] == 200 and entry["episode"]["active"]
    assert entry["evaluatedAt"] == start["evaluatedAt"]
    assert (entry["reason"], entry["replicasFailed"]) == ("NoReplicaReporting", 1)
    assert entry["observedAt"] == "2026-01-01T12:00:30Z"


def test_endpoint_status_carries_drift_only_for_monitored_deployments(make_spec: Any) -> None:
    drift = {"reason": "Evaluated", "episode": {"active": True, "clearEvaluations": 0}}
    previous = {
        "deployments": [
            {"name": "blue", "model": "credit-risk-v3", "drift": drift},
            {"name": "green", "model": "credit-risk-v4", "drift": drift},
        ],
        "conditions": [
            {"type": "DriftDetected", "status": "True", "reason": "DriftDetected",
             "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
    }  # fmt: skip
    spec = make_spec(
        deployments=[
            {"name": "blue", "model": "credit-risk-v3", "drift": {"enabled": True}},
            {"name": "green", "model": "credit-risk-v4"},
        ]
    )
    kwargs: dict[str, Any] = dict(
        generation=2, url=None, applied_traffic={}, applied_mirror={}, deployments={},
        router=None, needs_router=False, blockers=[], previous=previous, now="2026-01-02T00:00:00Z",
    )  # fmt: skip
    status = build_endpoint_status(spec=spec, **kwargs)
    assert [d.get("drift") for d in status["deployments"]] == [drift, None]
    cond = next(c for c in status["conditions"] if c["type"] == "DriftDetected")
    assert cond["status"] == "True"  # the monitor still owns it
    off = make_spec(deployments=[{"name": "blue", "model": "credit-risk-v3"}], traffic={})
    status = build_endpoint_status(spec=off, **kwargs)
    assert "drift" not in status["deployments"][0]
    cond = next(c for c in status["conditions"] if c["type"] == "DriftDetected")
    assert (cond["status"], cond["reason"]) == ("False", "NotMonitored")


def test_a_poll_that_learns_nothing_new_leaves_the_entry_as_it_was() -> None:
    """Idle endpoints write nothing: observedAt moves only with the rest of the entry."""
    later = T0 + datetime.timedelta(seconds=30)
    for obs in (
        DriftObservation(merged=merged(detected=False)),
        DriftObservation(problem=("NoReplicaReporting", "no Ready replica"), replicas_failed=1),
    ):
        first, _ = build_drift_entry("blue", obs, None, T0, POLICY)
        again, events = build_drift_entry("blue", obs, first, later, POLICY)
        assert (again, events) == (first, [])
    changed, _ = build_drift_entry(
        "blue", DriftObservation(merged=merged(detected=False, samples=150)), first, later, POLICY
    )
    assert changed["observedAt"] == "2026-01-01T12:00:30Z"


def test_server_defaults_in_the_stored_entry_do_not_count_as_a_change() -> None:
    obs = DriftObservation(problem=("DriftBaselineMissing", "Model m has no spec.baseline"))
    first, _ = build_drift_entry("blue", obs, None, T0, POLICY)
    stored = {**first, "samplesDropped": 0}  # the CRD's default, added by the API server
    again, _ = build_drift_entry("blue", obs, stored, T0 + datetime.timedelta(seconds=30), POLICY)
    assert again["observedAt"] == first["observedAt"]
