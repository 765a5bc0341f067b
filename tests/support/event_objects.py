"""Objects whose status implies CloudEvents, for the event layer's tests.

Statuses come from the real builders where the operator builds them (Model verification, the
endpoint status, the drift entries); the BatchJob, PipelineRun and rollout statuses are written
as the controllers write them and validated against the API's status models.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from mlkube.api.batch_job import BatchJobStatus
from mlkube.api.endpoint import OnlineEndpointSpec, OnlineEndpointStatus
from mlkube.api.pipeline_run import PipelineRunStatus
from mlkube.builders.endpoint_drift_status import DriftObservation, build_drift_entry
from mlkube.builders.endpoint_status import WorkloadHealth, build_endpoint_status
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.model_status import Verification, build_model_status
from mlkube.contract import API_VERSION
from mlkube.events.extract import deletion_events, implied_events
from mlkube.events.occurrence import Occurrence
from mlkube.reconcile.drift_episodes import EpisodePolicy

NS = "team-a"
DIGEST = "sha256:" + "4" * 64
T0 = datetime.datetime(2026, 3, 1, 9, 0, 0, tzinfo=datetime.UTC)
POLICY = EpisodePolicy(clear_evaluations=1, cooldown_seconds=0)


def at(minutes: int) -> str:
    return (T0 + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, uid: str, generation: int = 1) -> dict[str, Any]:
    return {"name": name, "namespace": NS, "uid": uid, "generation": generation}


def ready_model(name: str = "credit-risk-v4", uid: str = "uid-model-v4") -> dict[str, Any]:
    """A Model the verification Job verified, status as the model controller writes it."""
    status = build_model_status(
        generation=1,
        verification=Verification(digest=DIGEST, size=2048, file_count=2),
        previous=None,
        now=at(1),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {**meta(name, uid), "labels": {"team": "risk"}},
        "spec": {
            "modelName": "credit-risk",
            "version": "4",
            "framework": "onnx",
            "artifact": {"uri": "s3://models/credit-risk/4", "digest": DIGEST},
            "lineage": {"run": {"id": "run-17", "system": "mlflow"}},
            "properties": {"stage": "candidate"},
        },
        "status": status,
    }


ENDPOINT_SPEC: dict[str, Any] = {
    "deployments": [
        {"name": "blue", "model": "credit-risk-v3", "drift": {"enabled": True}},
        {"name": "green", "model": "credit-risk-v4"},
    ],
    "traffic": {"blue": 90, "green": 10},
}


def _facts(name: str, version: str) -> ModelFacts:
    return ModelFacts(
        name=name, model_name="credit-risk", version=version, framework="onnx",
        uri=f"s3://models/credit-risk/{version}", digest=DIGEST,
    )  # fmt: skip


def _merged(detected: bool) -> dict[str, Any]:
    return {
        "ready": True, "windowSize": 200, "windowSamples": 200, "samplesDropped": 0,
        "evaluatedAt": at(30),
        "datasetDrift": {"detected": detected, "driftedFeatures": int(detected),
                         "evaluatedFeatures": 2, "ratio": 0.5 if detected else 0.0},
        "features": [
            {"name": "income", "method": "wasserstein", "score": 0.4 if detected else 0.01,
             "threshold": 0.1, "drifted": detected},
            {"name": "age", "method": "ks", "score": 0.02, "threshold": 0.1, "drifted": False},
        ],
    }  # fmt: skip


def serving_endpoint(*, drift: str = "active") -> dict[str, Any]:
    """An endpoint that went blue 100 → blue 90 / green 10, both deployments available; blue's
    drift `drift`: "active" (an episode under way), "ended" (then another started: "both")."""
    spec = OnlineEndpointSpec.model_validate(ENDPOINT_SPEC)
    health = {n: WorkloadHealth(replicas=2, ready=2, available=True) for n in ("blue", "green")}
    models = {"credit-risk-v3": _facts("credit-risk-v3", "3")}
    models["credit-risk-v4"] = _facts("credit-risk-v4", "4")
    common: dict[str, Any] = dict(
        spec=spec, generation=1, url="http://credit.team-a.svc/score", deployments=health,
        router=WorkloadHealth(replicas=1, ready=1, available=True), needs_router=True,
        blockers=[], models=models,
    )  # fmt: skip
    first = build_endpoint_status(
        **common, applied_traffic={"blue": 100}, applied_mirror={}, previous=None, now=at(10)
    )
    status = build_endpoint_status(
        **common, applied_traffic={"blue": 90, "green": 10}, applied_mirror={},
        previous=first, now=at(20),
    )  # fmt: skip
    entry, _ = build_drift_entry(
        "blue", DriftObservation(merged=_merged(True), replicas_reporting=2), None,
        T0 + datetime.timedelta(minutes=30), POLICY,
    )  # fmt: skip
    if drift in ("ended", "both"):
        entry, _ = build_drift_entry(
            "blue", DriftObservation(merged=_merged(False), replicas_reporting=2), entry,
            T0 + datetime.timedelta(minutes=40), POLICY,
        )  # fmt: skip
    if drift == "both":
        entry, _ = build_drift_entry(
            "blue", DriftObservation(merged=_merged(True), replicas_reporting=2), entry,
            T0 + datetime.timedelta(minutes=50), POLICY,
        )  # fmt: skip
    status["deployments"][0]["drift"] = entry
    OnlineEndpointStatus.model_validate(status)
    return {
        "apiVersion": API_VERSION,
        "kind": "OnlineEndpoint",
        "metadata": meta("credit", "uid-endpoint"),
        "spec": copy.deepcopy(ENDPOINT_SPEC),
        "status": status,
    }


ROLLOUT_SPEC: dict[str, Any] = {
    "stable": "blue",
    "candidate": "green",
    "steps": [{"setWeight": 10}, {"analysis": {"metrics": ["errors"]}}, {"setWeight": 50},
              {"pause": {}}, {"setWeight": 100}],
    "metrics": [{"name": "errors", "successCondition": "result <= 0.01",
                 "provider": {"builtin": {"type": "errorRate"}}}],
}  # fmt: skip


def rolling_endpoint(phase: str = "Progressing", step: int = 2) -> dict[str, Any]:
    """`serving_endpoint` in a rollout of green over blue (status.rollout, docs/rollouts.md §4)."""
    obj = serving_endpoint()
    obj["spec"]["rollout"] = copy.deepcopy(ROLLOUT_SPEC)
    rollout: dict[str, Any] = {
        "revision": "sha256:" + "a" * 64, "phase": phase, "reason": "StepAnalysis",
        "message": "step 3/5", "stepIndex": step, "steps": 5, "stepStartedAt": at(25),
        "startedAt": at(21), "startTraffic": {"blue": 100}, "weight": 50, "mirror": 0,
    }  # fmt: skip
    if phase == "Paused":
        rollout.update(reason="Pause", message="waiting for promote")
    if phase in ("Promoted", "Aborted"):
        rollout["finishedAt"] = at(26)
    if phase == "Aborted":
        rollout.update(
            reason="AnalysisFailed",
            abort={"metric": "errors", "value": 0.12, "condition": "result <= 0.01",
                   "message": "rollout aborted: metric errors measured 0.12"},
        )  # fmt: skip
    obj["status"]["rollout"] = rollout
    OnlineEndpointSpec.model_validate(obj["spec"])
    OnlineEndpointStatus.model_validate(obj["status"])  # status.rollout as rkinds' API has it
    return obj


def batch_job(phase: str = "Succeeded", uid: str = "uid-bj") -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase, "observedGeneration": 1, "deployment": "main",
        "model": "credit-risk-v4", "startTime": at(5),
        "miniBatches": {"total": 4, "succeeded": 4 if phase == "Succeeded" else 3,
                        "failed": 0 if phase == "Succeeded" else 1},
        "items": {"total": 400, "succeeded": 400 if phase == "Succeeded" else 300,
                  "failed": 0 if phase == "Succeeded" else 100},
        "outputUri": "s3://out/score-1/", "message": f"job {phase.lower()}",
    }  # fmt: skip
    if phase in ("Succeeded", "Failed", "Cancelled"):
        status["completionTime"] = at(9)
    BatchJobStatus.model_validate(status)
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchJob",
        "metadata": meta("score-1", uid),
        "spec": {"endpoint": "credit-batch", "input": {"uri": "s3://in/", "format": "csv"}},
        "status": status,
    }


def pipeline_run(phase: str = "Succeeded", uid: str = "uid-pr") -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase, "observedGeneration": 1, "startTime": at(2),
        "producedModels": ["credit-risk-v5"] if phase == "Succeeded" else [],
        "message": f"run {phase.lower()}", "progress": "3/3",
    }  # fmt: skip
    if phase in ("Succeeded", "Failed", "Cancelled"):
        status["completionTime"] = at(8)
    PipelineRunStatus.model_validate(status)
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": meta("credit-retrain-x7", uid),
        "spec": {"pipeline": "credit-retrain", "trigger": {"type": "drift", "name": "on-drift"}},
        "status": status,
    }


def all_occurrences() -> list[Occurrence]:
    """Every occurrence the sample objects imply (all phases, all rollout outcomes)."""
    objects: list[dict[str, Any]] = [
        ready_model(),
        serving_endpoint(drift="both"),
        *(rolling_endpoint(phase) for phase in ("Progressing", "Paused", "Promoted", "Aborted")),
        *(batch_job(p, uid=f"bj-{p}") for p in ("Running", "Succeeded", "Failed", "Cancelled")),
        *(pipeline_run(p, uid=f"pr-{p}") for p in ("Running", "Succeeded", "Failed")),
    ]
    out = [e for obj in objects for e in implied_events(obj["kind"], obj)]
    return out + deletion_events("Model", ready_model(), "2026-03-02T00:00:00Z")
