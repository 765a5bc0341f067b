"""What the endpoint status records for the CloudEvents extractor: per deployment readyAt and the
served Model's version and digest, status.lastTrafficChange, and the drift lastEpisode."""

from __future__ import annotations

import datetime
from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec, OnlineEndpointStatus
from mlkube.builders.endpoint_drift_status import DriftObservation, build_drift_entry
from mlkube.builders.endpoint_status import WorkloadHealth, build_endpoint_status
from mlkube.builders.model_facts import ModelFacts
from mlkube.reconcile.drift_episodes import EpisodePolicy
from mlkube.reconcile.router_config import traffic_verdict

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"
UP = WorkloadHealth(replicas=2, ready=2, available=True)
ROLLING = WorkloadHealth(replicas=2, ready=1, available=False)
D3, D4 = "sha256:" + "3" * 64, "sha256:" + "4" * 64


def spec(green_model: str = "credit-risk-v4", **extra: Any) -> OnlineEndpointSpec:
    return OnlineEndpointSpec.model_validate(
        {
            "deployments": [
                {"name": "blue", "model": "credit-risk-v3"},
                {"name": "green", "model": green_model},
            ],
            "traffic": {"blue": 100},
            **extra,
        }
    )


def facts(name: str, version: str, digest: str) -> ModelFacts:
    return ModelFacts(
        name=name, model_name="credit-risk", version=version, framework="onnx",
        uri=f"s3://m/{version}", digest=digest,
    )  # fmt: skip


def status(
    s: OnlineEndpointSpec, previous: dict[str, Any] | None, now: str, **kwargs: Any
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "spec": s, "generation": 1, "url": None, "applied_traffic": {"blue": 100},
        "applied_mirror": {}, "deployments": {"blue": UP, "green": UP}, "router": UP,
        "needs_router": True, "blockers": [], "previous": previous, "now": now,
    }  # fmt: skip
    args.update(kwargs)
    out = build_endpoint_status(**args)
    OnlineEndpointStatus.model_validate(out)
    return out


def deps(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in st["deployments"]}


def test_ready_at_is_set_once_per_model_and_reset_by_a_new_model() -> None:
    models = {"credit-risk-v3": facts("credit-risk-v3", "3", D3),
              "credit-risk-v4": facts("credit-risk-v4", "4", D4)}  # fmt: skip
    first = status(spec(), None, T0, deployments={"blue": UP, "green": ROLLING}, models=models)
    assert deps(first)["blue"]["readyAt"] == T0
    assert "readyAt" not in deps(first)["green"]  # not available yet
    assert deps(first)["green"]["modelVersion"] == "4"
    second = status(spec(), first, T1)  # no models read (refresh_status): kept
    assert deps(second)["blue"] == deps(first)["blue"]
    assert deps(second)["green"]["readyAt"] == T1
    assert deps(second)["green"]["modelDigest"] == D4
    # green now serves another Model: ready again only once available with it.
    models["credit-risk-v5"] = facts("credit-risk-v5", "5", D4)
    changed = spec("credit-risk-v5")
    third = status(changed, second, T2, deployments={"blue": UP, "green": ROLLING}, models=models)
    assert "readyAt" not in deps(third)["green"]
    assert deps(third)["green"]["modelVersion"] == "5"
    assert deps(third)["blue"]["readyAt"] == T0
    fourth = status(changed, third, "2026-01-01T00:15:00Z")
    assert deps(fourth)["green"]["readyAt"] == "2026-01-01T00:15:00Z"


def test_a_new_digest_under_the_same_model_name_is_ready_again() -> None:
    models = {"credit-risk-v3": facts("credit-risk-v3", "3", D3),
              "credit-risk-v4": facts("credit-risk-v4", "4", D4)}  # fmt: skip
    first = status(spec(), None, T0, models=models)
    models["credit-risk-v4"] = facts("credit-risk-v4", "4", "sha256:" + "5" * 64)
    second = status(spec(), first, T1, models=models)
    assert deps(second)["green"]["readyAt"] == T1
    assert deps(second)["blue"]["readyAt"] == T0


def test_last_traffic_change_records_changes_but_not_the_first_apply() -> None:
    first = status(spec(), None, T0)
    assert "lastTrafficChange" not in first
    same = status(spec(), first, T1)
    assert "lastTrafficChange" not in same
    moved = status(spec(), same, T2, applied_traffic={"blue": 90, "green": 10})
    change = {"at": T2, "previousTraffic": {"blue": 100}, "previousMirror": {}}
    assert moved["lastTrafficChange"] == change
    kept = status(spec(), moved, "2026-01-01T00:20:00Z", applied_traffic={"blue": 90, "green": 10})
    assert kept["lastTrafficChange"] == change
    mirrored = status(
        spec(), kept, "2026-01-01T00:30:00Z", applied_traffic={"blue": 90, "green": 10},
        applied_mirror={"green": 50},
    )  # fmt: skip
    assert mirrored["lastTrafficChange"] == {
        "at": "2026-01-01T00:30:00Z", "previousTraffic": {"blue": 90, "green": 10},
        "previousMirror": {},
    }  # fmt: skip


def test_routers_first_loading_the_split_is_the_first_apply_not_a_change() -> None:
    # The first pass ran before any router replica was Ready: no split applied, none recorded.
    no_router = traffic_verdict("h1", 0, [])
    waiting = status(spec(), None, T0, applied_traffic=None, router=None, traffic_check=no_router)
    assert "traffic" not in waiting and "mirror" not in waiting
    assert waiting["observedGeneration"] == 1
    # Passes blocked or still loading in between keep it so (no `traffic` to carry).
    blocked = status(spec(), waiting, T1, applied_traffic=None, needs_router=False)
    assert "traffic" not in blocked
    loaded = traffic_verdict("h1", 1, ["h1"])
    first = status(spec(), blocked, T1, traffic_check=loaded)
    assert first["traffic"] == {"blue": 100}
    assert "lastTrafficChange" not in first
    # An empty split the routers served is a split: setting one later is a change.
    empty = status(spec(), None, T0, applied_traffic={}, traffic_check=loaded)
    assert empty["traffic"] == {}
    routed = status(spec(), empty, T1, traffic_check=loaded)
    assert routed["lastTrafficChange"] == {"at": T1, "previousTraffic": {}, "previousMirror": {}}
    # A pass that applies nothing keeps the recorded change.
    kept = status(spec(), routed, T2, applied_traffic=None, needs_router=False)
    assert kept["lastTrafficChange"] == routed["lastTrafficChange"]


def test_drift_last_episode_keeps_the_start_verbatim() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=datetime.UTC)
    policy = EpisodePolicy(clear_evaluations=1, cooldown_seconds=0)

    def merged(detected: bool) -> dict[str, Any]:
        return {
            "ready": True, "windowSize": 10, "windowSamples": 10, "samplesDropped": 0,
            "datasetDrift": {"detected": detected, "driftedFeatures": int(detected),
                             "evaluatedFeatures": 1, "ratio": float(detected)},
            "features": [],
        }  # fmt: skip

    start, _ = build_drift_entry("blue", DriftObservation(merged(True)), None, now, policy)
    assert "lastEpisode" not in start
    later = now + datetime.timedelta(minutes=5)
    end, events = build_drift_entry("blue", DriftObservation(merged(False)), start, later, policy)
    assert [e[1] for e in events] == ["DriftEnded"]
    assert end["lastEpisode"] == {
        "startedAt": start["episode"]["startedAt"], "endedAt": "2026-01-01T12:05:00.123Z"
    }  # fmt: skip
    again, _ = build_drift_entry(
        "blue", DriftObservation(merged(True)), end, later + datetime.timedelta(minutes=1), policy
    )
    assert again["lastEpisode"] == end["lastEpisode"] and again["episode"]["active"]
