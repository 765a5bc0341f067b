"""`format: azureml`: Event Grid events with Azure Machine Learning's types and data field names.

The expected names are copied here from Azure's documentation, not from the code under test:
https://learn.microsoft.com/azure/event-grid/event-schema-machine-learning and the Event Grid
SDK data models (https://learn.microsoft.com/javascript/api/@azure/eventgrid-system-events/
machinelearningservices*eventdata), whose JSON names the Azure SDKs' own tests parse from
captured Azure payloads.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from mlkube.events.azureml import to_event_grid
from mlkube.events.encode import azureml
from mlkube.events.extract import implied_events
from support.event_objects import all_occurrences, batch_job, pipeline_run, ready_model
from support.event_objects import serving_endpoint as endpoint

DOCUMENTED = {
    "Microsoft.MachineLearningServices.ModelRegistered": {
        "modelName", "modelVersion", "modelTags", "modelProperties",
    },
    "Microsoft.MachineLearningServices.ModelDeployed": {
        "serviceName", "serviceComputeType", "modelIds", "serviceTags", "serviceProperties",
    },
    "Microsoft.MachineLearningServices.RunCompleted": {
        "experimentId", "experimentName", "runId", "runType", "runTags", "runProperties",
    },
    "Microsoft.MachineLearningServices.RunStatusChanged": {
        "experimentId", "experimentName", "runId", "runType", "runTags", "runProperties",
        "runStatus",
    },
    "Microsoft.MachineLearningServices.DatasetDriftDetected": {
        "dataDriftId", "dataDriftName", "runId", "baseDatasetId", "targetDatasetId",
        "driftCoefficient", "startTime", "endTime",
    },
}  # fmt: skip
ENVELOPE = {
    "id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", "metadataVersion"
}  # fmt: skip


def grid(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [g for o in implied_events(obj["kind"], obj) for g in to_event_grid(o)]


def test_every_event_has_the_documented_envelope_and_data_fields() -> None:
    seen = set()
    for occurrence in all_occurrences():
        for event in to_event_grid(occurrence):
            assert set(event) == ENVELOPE
            assert set(event["data"]) == DOCUMENTED[event["eventType"]], event["eventType"]
            assert uuid.UUID(event["id"]).version == 4
            assert event["topic"] == "/apis/mlkube.dev/namespaces/team-a"
            seen.add(event["eventType"])
    assert seen == set(DOCUMENTED)  # all five types are produced


def test_model_registered_and_deployed() -> None:
    [registered] = grid(ready_model())
    assert registered["eventType"].endswith("ModelRegistered")
    assert registered["subject"] == "models/credit-risk:4"
    assert registered["data"]["modelName"] == "credit-risk"
    assert registered["data"]["modelVersion"] == "4"  # a string, as Azure sends it
    assert registered["data"]["modelTags"] == {"team": "risk"}
    assert registered["data"]["modelProperties"]["stage"] == "candidate"
    deployed = [g for g in grid(endpoint()) if g["eventType"].endswith("ModelDeployed")]
    green = next(g for g in deployed if g["data"]["serviceProperties"]["deployment"] == "green")
    assert green["subject"] == "endpoints/credit"
    assert green["data"]["serviceName"] == "credit"
    assert green["data"]["modelIds"] == "credit-risk-v4:4"


def test_runs() -> None:
    succeeded = grid(pipeline_run("Succeeded"))
    types = [(g["eventType"].rsplit(".", 1)[1], g["data"].get("runStatus")) for g in succeeded]
    assert types == [("RunStatusChanged", "Running"), ("RunCompleted", None),
                     ("RunStatusChanged", "Completed")]  # fmt: skip
    completed = succeeded[1]
    assert completed["subject"] == "experiments/credit-retrain/runs/credit-retrain-x7"
    assert completed["data"]["runType"] == "pipelinerun"
    assert completed["data"]["runProperties"]["producedModels"] == "credit-risk-v5"
    # Failures are status changes only: Azure's RunCompleted means "successfully completed".
    failed = grid(batch_job("Cancelled"))
    assert [g["data"].get("runStatus") for g in failed] == ["Running", "Canceled"]
    assert all(g["eventType"].endswith("RunStatusChanged") for g in failed)
    assert {g["id"] for g in succeeded}.isdisjoint(g["id"] for g in failed)
    # One occurrence, two Azure events: distinct ids, both stable.
    assert len({g["id"] for g in succeeded}) == 3
    assert [g["id"] for g in grid(pipeline_run("Succeeded"))] == [g["id"] for g in succeeded]


def test_drift_detected() -> None:
    [drift] = [g for g in grid(endpoint()) if g["eventType"].endswith("DatasetDriftDetected")]
    data = drift["data"]
    assert data["dataDriftName"] == "credit/blue" == data["targetDatasetId"]
    assert data["driftCoefficient"] == 0.5
    assert data["startTime"] == "2026-03-01T09:30:00.000Z" == drift["eventTime"]
    assert data["baseDatasetId"] == "credit-risk-v3/baseline"


def test_the_message_is_an_event_grid_delivery() -> None:
    occurrence = implied_events("Model", ready_model())[0]
    message = azureml(occurrence)
    assert message is not None
    assert message.headers["aeg-event-type"] == "Notification"
    assert message.headers["content-type"] == "application/json"
    body = json.loads(message.body)
    assert isinstance(body, list) and body == to_event_grid(occurrence)
