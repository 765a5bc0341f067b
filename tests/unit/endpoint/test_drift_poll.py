"""The drift monitor's reading side: which pods are polled, baseline loading and caching, and
how one evaluation becomes a status patch and Events."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_drift_status import DriftObservation
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.drift import apply_observations
from mlkube.controllers.drift_poll import BaselineCache, download_profile, sidecar_addresses
from mlkube.controllers.errors import BaselineError
from mlkube.reconcile.drift_episodes import EpisodePolicy
from mlkube.storage import compute_digest

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
PROFILE = {"formatVersion": 1, "windowSize": 10, "features": [], "columns": []}


def pod(ip: str | None, *, ready: bool = True, sidecar: bool = True, **meta: Any) -> Any:
    containers = [{"name": "server"}] + ([{"name": "drift"}] if sidecar else [])
    return {
        "metadata": {"name": f"p-{ip}", **meta},
        "spec": {"containers": containers},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_only_ready_running_sidecar_pods_are_polled() -> None:
    pods = [
        pod("10.0.0.2"),
        pod("10.0.0.1"),
        pod("10.0.0.1"),  # duplicate address (host network): polled once
        pod("10.0.0.3", ready=False),
        pod("10.0.0.4", sidecar=False),  # an old pod from before drift was enabled
        pod("10.0.0.5", deletionTimestamp="2026-01-01T00:00:00Z"),
        pod(None),
    ]
    assert sidecar_addresses(pods) == ["10.0.0.1", "10.0.0.2"]


def test_baseline_cache_loads_each_digest_once_and_evicts_the_oldest() -> None:
    calls: list[tuple[str, str | None]] = []

    def loader(uri: str, digest: str | None) -> dict[str, Any]:
        calls.append((uri, digest))
        return {"uri": uri}

    cache = BaselineCache(loader, size=2)
    assert cache.get("s3://a", "sha256:a") == {"uri": "s3://a"}
    cache.get("s3://a-moved", "sha256:a")  # same bytes elsewhere: still cached
    cache.get("s3://b", None)
    cache.get("s3://c", "sha256:c")  # evicts sha256:a
    cache.get("s3://a", "sha256:a")
    assert calls == [
        ("s3://a", "sha256:a"),
        ("s3://b", None),
        ("s3://c", "sha256:c"),
        ("s3://a", "sha256:a"),
    ]
    assert cache.loads == 4


PRODUCTION = OperatorConfig(serving_image="registry.example/mlkube-serving:1")
DEVELOPMENT = OperatorConfig(
    serving_image="registry.example/mlkube-serving:1", allow_file_artifacts=True
)


def test_file_baselines_are_refused_by_a_production_operator(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="MLKUBE_ALLOW_FILE_ARTIFACTS"):
        download_profile((tmp_path / "p.json").as_uri(), None, PRODUCTION)


def test_download_profile_verifies_and_parses(tmp_path: Path) -> None:
    path = tmp_path / "store" / "credit.profile.json"
    path.parent.mkdir()
    path.write_text(json.dumps(PROFILE))
    digest = compute_digest(path.as_uri()).digest
    assert download_profile(path.as_uri(), digest, DEVELOPMENT) == PROFILE
    with pytest.raises(BaselineError, match="digest"):
        download_profile(path.as_uri(), "sha256:" + "0" * 64, DEVELOPMENT)
    with pytest.raises(BaselineError, match="not found"):
        download_profile((tmp_path / "nothing.json").as_uri(), digest, DEVELOPMENT)
    path.write_text(json.dumps({**PROFILE, "formatVersion": 9}))
    with pytest.raises(BaselineError, match="formatVersion 9"):
        download_profile(path.as_uri(), compute_digest(path.as_uri()).digest, DEVELOPMENT)
    path.write_text("{not json")
    with pytest.raises(BaselineError, match="cannot read"):
        download_profile(path.as_uri(), compute_digest(path.as_uri()).digest, DEVELOPMENT)


def test_baseline_without_digest_is_never_fetched(tmp_path: Path) -> None:
    # Before: a baseline without spec.baseline.digest was downloaded and used unverified.
    path = tmp_path / "credit.profile.json"
    path.write_text(json.dumps(PROFILE))
    with pytest.raises(BaselineError, match="without a digest"):
        download_profile(path.as_uri(), None, DEVELOPMENT)


def endpoint(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "credit", "generation": 3}, "status": status}


def merged(detected: bool) -> dict[str, Any]:
    return {
        "ready": True,
        "windowSize": 10,
        "windowSamples": 10,
        "samplesDropped": 0,
        "evaluatedAt": None,
        "datasetDrift": {"detected": detected, "driftedFeatures": 1, "evaluatedFeatures": 1,
                         "ratio": 1.0},
        "features": [{"name": "x0", "method": "ks", "score": 0.9, "threshold": 0.5,
                      "drifted": detected}],
        "prediction": None,
    }  # fmt: skip


def test_an_evaluation_becomes_a_status_patch_and_events() -> None:
    spec = OnlineEndpointSpec.model_validate(
        {
            "deployments": [
                {"name": "blue", "model": "m3", "drift": {"enabled": True}},
                {"name": "green", "model": "m4"},
            ]
        }
    )
    status = {
        "deployments": [
            {"name": "blue", "model": "m3", "readyReplicas": 1, "replicas": 1},
            {"name": "green", "model": "m4", "drift": {"reason": "Evaluated"}},  # drift now off
        ],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Available"}],
    }
    observations = {"blue": DriftObservation(merged=merged(True), replicas_reporting=1)}
    policy = EpisodePolicy(1, 0)
    patch, events = apply_observations(endpoint(status), spec, observations, T0, policy)
    assert patch is not None
    blue, green = patch["deployments"]
    assert blue["readyReplicas"] == 1 and blue["drift"]["detected"] is True
    assert "drift" not in green
    assert patch["conditions"][0] == status["conditions"][0]
    assert patch["conditions"][1] == {
        "type": "DriftDetected",
        "status": "True",
        "reason": "DriftDetected",
        "message": "blue: " + blue["drift"]["message"],
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "observedGeneration": 3,
    }
    assert [e[:2] for e in events] == [("Warning", "DriftDetected")]
    # Applying the same evaluation to the stored result changes nothing and says nothing.
    stored = {**status, **patch}
    again, events = apply_observations(endpoint(stored), spec, observations, T0, policy)
    assert (again, events) == (None, [])
    later = T0 + datetime.timedelta(seconds=30)
    clean = {"blue": DriftObservation(merged=merged(False), replicas_reporting=1)}
    patch, events = apply_observations(endpoint(stored), spec, clean, later, policy)
    assert patch is not None and [e[:2] for e in events] == [("Normal", "DriftEnded")]
    condition = patch["conditions"][1]
    assert (condition["status"], condition["reason"]) == ("False", "NoDrift")
    assert condition["lastTransitionTime"] == "2026-01-01T12:00:30Z"
