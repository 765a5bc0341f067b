"""What the Pipeline handlers read from watch events to decide whom to kick: the endpoints an
onDrift trigger watches, and the part of an endpoint that matters to it (existence, drift
settings, episodes), so that unrelated endpoint changes (replicas, traffic, the operator's
own status writes) never kick a Pipeline."""

from __future__ import annotations

from typing import Any

import kopf

from mlkube.handlers.pipeline import drift_endpoints, drift_state


def endpoint(episode: dict[str, Any], **status: Any) -> kopf.Body:
    return kopf.Body({
        "spec": {"deployments": [{"name": "blue", "drift": {"enabled": True}},
                                 {"name": "green"}], "traffic": {"blue": 100}},
        "status": {"deployments": [{"name": "blue", "readyReplicas": 1,
                                    "drift": {"samples": 5, "episode": episode}}], **status},
    })  # fmt: skip


def test_the_endpoints_of_drift_triggers() -> None:
    triggers = [
        {"name": "a", "onDrift": {"endpoint": "credit"}},
        {"name": "b", "onNewData": {"uri": "s3://x/"}},
        {"name": "c", "onDrift": {"endpoint": "fraud", "deployment": "v2"}},
    ]
    spec = {"triggers": triggers}
    assert drift_endpoints(spec) == frozenset({"credit", "fraud"})
    assert drift_endpoints({}) == frozenset()


def test_only_episode_settings_and_existence_changes_matter() -> None:
    quiet = drift_state("MODIFIED", endpoint({"active": False}))
    busier = endpoint({"active": False}, url="http://credit")
    busier["status"]["deployments"][0]["readyReplicas"] = 3
    busier["status"]["deployments"][0]["drift"]["samples"] = 500
    assert drift_state("MODIFIED", busier) == quiet
    started = drift_state(
        "MODIFIED", endpoint({"active": True, "startedAt": "2026-05-01T10:00:00Z"})
    )
    assert started != quiet
    again = drift_state("MODIFIED", endpoint({"active": True, "startedAt": "2026-05-01T11:00:00Z"}))
    assert again != started
    disabled = endpoint({"active": False})
    disabled["spec"]["deployments"][0]["drift"] = {"enabled": False}
    assert drift_state("MODIFIED", disabled) != quiet
    assert drift_state("DELETED", endpoint({"active": False})) == "gone"
