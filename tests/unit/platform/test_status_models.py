"""Statuses are built as the API's status models: invalid ones fail here, long messages are cut.

Before, the builders returned plain dicts: a 100 KB storage error went into status.message and
the Ready condition as is, and the API server refused every status write of that object (the
CRD bounds messages); a bad reason or a negative count was only noticed by the API server too.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mlkube.api.common import MAX_MESSAGE, MAX_SHORT_TEXT, Condition, bound_message
from mlkube.api.endpoint import (
    MAX_DRIFT_METHOD,
    DriftFeatureStatus,
    OnlineEndpointSpec,
    OnlineEndpointStatus,
)
from mlkube.api.model import ModelStatus
from mlkube.builders.endpoint_drift_status import (
    DriftObservation,
    build_drift_entry,
    top_features,
)
from mlkube.builders.endpoint_status import Blocker, WorkloadHealth, build_endpoint_status
from mlkube.builders.model_status import (
    Verification,
    build_model_status,
    build_verifying_status,
)
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.drift_episodes import EpisodePolicy

REPO = Path(__file__).resolve().parents[3]
NOW = "2026-01-01T00:00:00Z"
# A storage error with a 100 KB body (an HTML error page, a listing, a traceback).
HUGE = "cannot read artifact s3://b/m: " + "x" * 100_000 + " -- root cause: AccessDenied"
SPEC = OnlineEndpointSpec.model_validate(
    {"deployments": [{"name": "blue", "model": "m1"}], "traffic": {"blue": 100}}
)


def _endpoint_status(**kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "spec": SPEC,
        "generation": 1,
        "url": "http://e.ns.svc",
        "applied_traffic": {"blue": 100},
        "applied_mirror": {},
        "deployments": {"blue": WorkloadHealth(replicas=1, ready=1, available=True)},
        "router": WorkloadHealth(replicas=1, ready=1, available=True),
        "needs_router": True,
        "blockers": [],
        "previous": None,
        "now": NOW,
    }
    args.update(kwargs)
    return build_endpoint_status(**args)


def test_bound_message_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    out = bound_message(HUGE)
    assert len(out) <= MAX_MESSAGE
    assert out.startswith("cannot read artifact s3://b/m: ")
    assert out.endswith("root cause: AccessDenied")
    cut = int(out.split("[... ")[1].split(" ")[0])
    assert f" [... {cut} characters cut ...] " in out
    assert len(out) - len(f" [... {cut} characters cut ...] ") + cut == len(HUGE)
    assert bound_message("short") == "short"
    assert bound_message("y" * MAX_MESSAGE) == "y" * MAX_MESSAGE
    assert len(bound_message("z" * (MAX_MESSAGE + 1))) <= MAX_MESSAGE
    assert len(bound_message("é" * 50, limit=10)) == 10


def test_a_100kb_verification_error_makes_a_valid_model_status() -> None:
    status = build_model_status(
        generation=2,
        verification=Verification(error=HUGE, reason="ArtifactUnreadable"),
        previous=None,
        now=NOW,
    )
    assert status["phase"] == "Failed"
    assert len(status["message"]) <= MAX_MESSAGE
    assert status["message"].endswith("AccessDenied")
    assert len(status["conditions"][0]["message"]) <= MAX_MESSAGE
    ModelStatus.model_validate(status)  # what the API server would check


def test_a_100kb_blocker_makes_a_valid_endpoint_status() -> None:
    status = _endpoint_status(blockers=[Blocker("ModelFailed", HUGE, degraded=True)])
    assert len(status["message"]) <= MAX_MESSAGE
    assert all(len(c["message"]) <= MAX_MESSAGE for c in status["conditions"])
    OnlineEndpointStatus.model_validate(status)


def test_a_100kb_drift_note_makes_a_valid_drift_entry() -> None:
    obs = DriftObservation(problem=("NoReplicaReporting", HUGE), note=HUGE)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    entry, events = build_drift_entry("blue", obs, None, now, EpisodePolicy())
    assert len(entry["message"]) <= MAX_MESSAGE
    assert events == []


def test_set_condition_bounds_every_writer() -> None:
    conds = set_condition(
        None, type_="DriftDetected", status=True, reason="X", message=HUGE, generation=1, now=NOW
    )
    assert len(conds[0]["message"]) <= MAX_MESSAGE


def test_messages_written_by_an_older_operator_are_bounded_when_carried() -> None:
    old = {"type": "Other", "status": "True", "reason": "R", "message": HUGE,
           "lastTransitionTime": NOW}  # fmt: skip
    status = build_verifying_status(generation=1, previous={"conditions": [old]}, now=NOW)
    assert [len(c["message"]) <= MAX_MESSAGE for c in status["conditions"]] == [True] * 4


def test_the_models_refuse_a_message_over_the_bound() -> None:
    with pytest.raises(ValidationError):
        ModelStatus(message="m" * (MAX_MESSAGE + 1))
    with pytest.raises(ValidationError):
        Condition.model_validate(
            {
                "type": "Ready",
                "status": "True",
                "reason": "R",
                "message": "m" * (MAX_MESSAGE + 1),
                "lastTransitionTime": NOW,
            }
        )


@pytest.mark.parametrize(
    "verification",
    [
        Verification(digest="md5:abc", size=1, file_count=1),  # not a sha256 digest
        Verification(digest="sha256:" + "a" * 64, size=-1, file_count=1),  # negative size
        Verification(error="boom", reason="not a CamelCase reason"),
    ],
)
def test_an_invalid_model_status_fails_while_building(verification: Verification) -> None:
    with pytest.raises(ValidationError):
        build_model_status(generation=1, verification=verification, previous=None, now=NOW)


def test_an_invalid_timestamp_or_carried_condition_fails_while_building() -> None:
    with pytest.raises(ValidationError):
        build_verifying_status(generation=1, previous=None, now="yesterday")
    unknown = {"type": "Other", "status": "Maybe", "reason": "R", "lastTransitionTime": NOW}
    with pytest.raises(ValidationError):
        build_verifying_status(generation=1, previous={"conditions": [unknown]}, now=NOW)


def test_unknown_phase_and_wrong_types_are_refused() -> None:
    with pytest.raises(ValidationError):
        ModelStatus.model_validate({"phase": "Running"})
    with pytest.raises(ValidationError):
        OnlineEndpointStatus.model_validate(
            {"deployments": [{"name": "b", "model": "m", "readyReplicas": "many"}]}
        )
    with pytest.raises(ValidationError):
        OnlineEndpointStatus.model_validate({"traffic": {"blue": 101}})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"deployments": {"blue": WorkloadHealth(replicas=1, ready=-1, available=False)}},
        {"blockers": [Blocker("no spaces allowed", "m")]},
        {"applied_traffic": {"blue": 150}},
        {"previous": {"deployments": [{"name": "blue", "drift": {"samples": "lots"}}]}},
    ],
)
def test_an_invalid_endpoint_status_fails_while_building(kwargs: dict[str, Any]) -> None:
    spec = SPEC
    if "previous" in kwargs:
        spec = OnlineEndpointSpec.model_validate(
            {"deployments": [{"name": "blue", "model": "m1", "drift": {"enabled": True}}]}
        )
    with pytest.raises(ValidationError):
        _endpoint_status(spec=spec, **kwargs)


def test_the_crds_bound_condition_messages_with_the_same_constant() -> None:
    for plural in ("models", "onlineendpoints"):
        crd = yaml.safe_load((REPO / "crds" / f"mlkube.dev_{plural}.yaml").read_text())
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        props = status["properties"]
        assert props["message"]["maxLength"] == MAX_MESSAGE
        condition = props["conditions"]["items"]["properties"]
        assert condition["message"]["maxLength"] == MAX_MESSAGE
        assert condition["lastTransitionTime"]["format"] == "date-time"


def test_feature_names_from_profiles_and_sidecars_are_bounded_in_status() -> None:
    long_name = {"name": "f" * 1000, "method": "m" * 500, "score": 0.5, "threshold": 0.1,
                 "drifted": True}  # fmt: skip
    (top,) = top_features([long_name])
    assert len(top["name"]) <= MAX_SHORT_TEXT and len(top["method"]) <= MAX_DRIFT_METHOD
    DriftFeatureStatus.model_validate(top)
