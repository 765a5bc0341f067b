"""implied_events: which occurrences an object's status implies, their times, data and ids."""

from __future__ import annotations

import copy
from typing import Any

from mlkube.builders.model_status import build_verifying_status
from mlkube.events.extract import deletion_events, implied_events
from mlkube.events.occurrence import Occurrence
from support.event_objects import (
    DIGEST,
    NS,
    all_occurrences,
    at,
    batch_job,
    pipeline_run,
    ready_model,
    rolling_endpoint,
    serving_endpoint,
)

P = "dev.mlkube."


def implied(obj: dict[str, Any]) -> list[Occurrence]:
    return implied_events(obj["kind"], obj)


def by_type(events: list[Occurrence]) -> dict[str, list[Occurrence]]:
    out: dict[str, list[Occurrence]] = {}
    for e in events:
        out.setdefault(e.type.removeprefix(P).rsplit(".v", 1)[0], []).append(e)
    return out


def test_ids_are_stable_across_calls_and_distinct_across_occurrences() -> None:
    first, second = all_occurrences(), all_occurrences()
    assert [e.id for e in first] == [e.id for e in second]
    assert first == second  # the whole occurrence, not only the id

    # Several states imply the same occurrence (a rollout's start in every phase, a drift
    # episode while active and once ended): one id per occurrence, never one for two.
    def occurrence_key(e: Occurrence) -> tuple[object, ...]:
        data = e.data
        return (e.type, e.extensions["mlkubeuid"], e.time, data.get("stepIndex"),
                data.get("deployment"))  # fmt: skip

    keys_by_id: dict[str, set[tuple[object, ...]]] = {}
    for e in first:
        keys_by_id.setdefault(e.id, set()).add(occurrence_key(e))
    assert all(len(keys) == 1 for keys in keys_by_id.values())
    assert len(keys_by_id) == len({occurrence_key(e) for e in first}) > 25
    assert all(len(e.id) == 64 and int(e.id, 16) >= 0 for e in first)


def test_ready_model_implies_registered_and_verified() -> None:
    model = ready_model()
    events = by_type(implied(model))
    assert sorted(events) == ["model.registered", "model.verified"]
    registered = events["model.registered"][0]
    assert registered.time == at(1)  # the Ready condition's transition
    assert registered.subject == f"Model/{NS}/credit-risk-v4"
    assert registered.source == f"/apis/mlkube.dev/namespaces/{NS}/models/credit-risk-v4"
    assert registered.data == {
        "name": "credit-risk", "version": "4", "framework": "onnx",
        "uri": "s3://models/credit-risk/4", "digest": DIGEST,
        "lineage": {"run": {"id": "run-17", "uri": None, "system": "mlflow"}},
        "properties": {"stage": "candidate"}, "labels": {"team": "risk"},
    }  # fmt: skip
    assert registered.extensions == {
        "mlkubenamespace": NS, "mlkubename": "credit-risk-v4", "mlkubeuid": "uid-model-v4",
        "mlkubegeneration": 1, "mlkubemodelversion": "4", "mlkubemodeldigest": DIGEST,
    }  # fmt: skip
    verified = events["model.verified"][0]
    assert (verified.time, verified.data["digest"], verified.data["size"]) == (at(1), DIGEST, 2048)
    # Another object (uid) with the same content: other ids.
    other = implied(ready_model(uid="uid-other"))
    assert {e.id for e in other}.isdisjoint(e.id for e in implied(model))


def test_a_model_being_verified_or_failed_implies_nothing() -> None:
    model = ready_model()
    model["status"] = build_verifying_status(generation=1, previous=None, now=at(0))
    assert implied(model) == []
    model["status"] = {"phase": "Failed", "conditions": []}
    assert implied(model) == []


def test_deletion() -> None:
    model = ready_model()
    [deleted] = deletion_events("Model", model, now="2026-03-02T00:00:00Z")
    assert (deleted.type, deleted.time) == (P + "model.deleted.v1", "2026-03-02T00:00:00Z")
    assert deleted.data == {"name": "credit-risk", "version": "4"}
    model["metadata"]["deletionTimestamp"] = "2026-03-01T23:00:00Z"
    [again] = deletion_events("Model", model, now="2026-03-02T00:05:00Z")
    assert again.time == "2026-03-01T23:00:00Z" and again.id == deleted.id
    assert deletion_events("OnlineEndpoint", serving_endpoint(), now=at(0)) == []


def test_endpoint_deployments_ready_traffic_and_drift() -> None:
    events = by_type(implied(serving_endpoint()))
    assert sorted(events) == [
        "drift.detected",
        "endpoint.deployment.ready",
        "endpoint.traffic.changed",
    ]
    ready = {e.data["deployment"]: e for e in events["endpoint.deployment.ready"]}
    assert ready["green"].time == at(10)
    assert ready["green"].data == {
        "endpoint": "credit", "deployment": "green", "model": "credit-risk-v4",
        "modelVersion": "4", "modelDigest": DIGEST, "url": "http://credit.team-a.svc/score",
        "replicas": 2,
    }  # fmt: skip
    assert ready["blue"].extensions["mlkubemodelversion"] == "3"
    [traffic] = events["endpoint.traffic.changed"]
    assert traffic.time == at(20)
    assert traffic.data == {
        "endpoint": "credit", "traffic": {"blue": 90, "green": 10}, "mirror": {},
        "previous": {"traffic": {"blue": 100}, "mirror": {}},
    }  # fmt: skip
    [drift] = events["drift.detected"]
    assert drift.time == "2026-03-01T09:30:00.000Z" == drift.data["startedAt"]
    assert drift.data["driftedRatio"] == 0.5
    assert [f["name"] for f in drift.data["topFeatures"]] == ["income", "age"]


def test_drift_episodes_keep_their_ids_from_start_to_end() -> None:
    active = by_type(implied(serving_endpoint(drift="active")))["drift.detected"]
    ended = by_type(implied(serving_endpoint(drift="ended")))
    both = by_type(implied(serving_endpoint(drift="both")))
    # The ended episode's detected is the same occurrence as while it was active.
    assert [e.id for e in ended["drift.detected"]] == [e.id for e in active]
    [end] = ended["drift.ended"]
    assert end.data["startedAt"] == "2026-03-01T09:30:00.000Z"
    assert end.time == end.data["endedAt"] == "2026-03-01T09:40:00.000Z"
    assert both["drift.ended"][0].id == end.id
    # A new episode is a new occurrence.
    assert len({e.id for e in both["drift.detected"]}) == 2
    assert both["drift.detected"][-1].data["startedAt"] == "2026-03-01T09:50:00.000Z"


def test_a_split_applied_again_later_is_a_new_change() -> None:
    obj = serving_endpoint()
    first = by_type(implied(obj))["endpoint.traffic.changed"][0]
    later = copy.deepcopy(obj)
    later["status"]["lastTrafficChange"]["at"] = at(90)  # back to 90/10 after another change
    second = by_type(implied(later))["endpoint.traffic.changed"][0]
    assert second.id != first.id and second.data == first.data


def test_rollout_progress() -> None:
    progressing = by_type(implied(rolling_endpoint("Progressing", step=2)))
    [started] = progressing["rollout.started"]
    assert started.time == at(21)
    assert started.data["startTraffic"] == {"blue": 100} and started.data["steps"] == 5
    steps = progressing["rollout.step"]
    assert [s.data["stepIndex"] for s in steps] == [0, 1, 2]
    assert [(s.data["weight"], s.data["step"]) for s in steps] == [
        (10, {"setWeight": 10}), (None, {"analysis": {"metrics": ["errors"]}}),
        (50, {"setWeight": 50}),
    ]  # fmt: skip
    assert steps[-1].time == at(25)
    paused = by_type(implied(rolling_endpoint("Paused", step=3)))
    assert paused["rollout.started"][0].id == started.id  # the same run
    [pause] = paused["rollout.paused"]
    assert (pause.data["stepIndex"], pause.data["reason"]) == (3, "Pause")
    # stepIndex = steps once every step is done: all five steps were reached.
    done = by_type(implied(rolling_endpoint("Promoted", step=5)))
    assert [s.data["stepIndex"] for s in done["rollout.step"]] == [0, 1, 2, 3, 4]
    promoted = done["rollout.promoted"][0]
    assert promoted.time == at(26) and promoted.data["traffic"] == {"blue": 90, "green": 10}
    aborted = by_type(implied(rolling_endpoint("Aborted", step=1)))
    [abort] = aborted["rollout.aborted"]
    assert (abort.data["metric"], abort.data["value"], abort.data["condition"]) == (
        "errors", 0.12, "result <= 0.01",
    )  # fmt: skip
    assert abort.data["traffic"] == {"blue": 100}
    assert "rollout.promoted" not in aborted and len(aborted["rollout.step"]) == 2


def test_a_retried_rollout_is_a_new_run_and_a_first_deploy_no_rollout() -> None:
    obj = rolling_endpoint("Progressing", step=0)
    retried = copy.deepcopy(obj)
    retried["status"]["rollout"]["startedAt"] = at(60)
    ids = {e.id for e in implied(obj) if "rollout" in e.type}
    again = {e.id for e in implied(retried) if "rollout" in e.type}
    assert len(ids) == len(again) == 2 and ids.isdisjoint(again)
    obj["status"]["rollout"].update(phase="Promoted", reason="InitialDeploy", finishedAt=at(21))
    assert [e for e in implied(obj) if "rollout" in e.type] == []


def test_batch_job_phases() -> None:
    assert implied(batch_job("Pending") | {"status": {"phase": "Pending"}}) == []
    [started] = implied(batch_job("Running"))
    assert (started.type, started.time, started.data["phase"]) == (
        P + "batchjob.started.v1", at(5), "Running",
    )  # fmt: skip
    started_id = started.id
    done = by_type(implied(batch_job("Succeeded")))
    assert done["batchjob.started"][0].id == started_id
    [succeeded] = done["batchjob.succeeded"]
    assert succeeded.time == at(9)
    assert succeeded.data["counts"] == {
        "miniBatches": {"total": 4, "succeeded": 4, "failed": 0},
        "items": {"total": 400, "succeeded": 400, "failed": 0},
    }
    assert (
        succeeded.data["endpoint"] == "credit-batch" and succeeded.data["model"] == "credit-risk-v4"
    )
    cancelled = by_type(implied(batch_job("Cancelled")))
    assert cancelled["batchjob.failed"][0].data["phase"] == "Cancelled"


def test_pipeline_run_phases() -> None:
    done = by_type(implied(pipeline_run("Succeeded")))
    assert sorted(done) == ["pipelinerun.started", "pipelinerun.succeeded"]
    assert done["pipelinerun.succeeded"][0].data == {
        "name": "credit-retrain-x7", "pipeline": "credit-retrain", "phase": "Succeeded",
        "trigger": "drift", "producedModels": ["credit-risk-v5"], "message": "run succeeded",
    }  # fmt: skip
    failed = by_type(implied(pipeline_run("Failed")))
    assert failed["pipelinerun.failed"][0].time == at(8)
    assert implied_events("Pipeline", pipeline_run()) == []
