"""`format: azureml`: mlkube occurrences as Azure Event Grid events of Azure Machine Learning's
five types, with Azure's data field names, so Event Grid consumers port over unchanged.

Field names are those of the Event Grid system-event data models (camelCase, as Azure sends
them and as the Azure SDKs' `MachineLearningServices*EventData` classes read them):
https://learn.microsoft.com/azure/event-grid/event-schema-machine-learning (types, examples)
and https://learn.microsoft.com/javascript/api/@azure/eventgrid-system-events/ (the data
models, e.g. machinelearningservicesrunstatuschangedeventdata). The envelope is the Event
Grid schema (https://learn.microsoft.com/azure/event-grid/event-schema): id, topic, subject,
eventType, eventTime, data, dataVersion, metadataVersion; a delivery is a JSON array.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any, Final

from mlkube.events import catalogue as c
from mlkube.events.occurrence import EXT_NAMESPACE, EXT_UID, GROUP_PATH, Occurrence

PREFIX: Final = "Microsoft.MachineLearningServices."
MODEL_REGISTERED: Final = PREFIX + "ModelRegistered"
MODEL_DEPLOYED: Final = PREFIX + "ModelDeployed"
RUN_COMPLETED: Final = PREFIX + "RunCompleted"
RUN_STATUS_CHANGED: Final = PREFIX + "RunStatusChanged"
DATASET_DRIFT_DETECTED: Final = PREFIX + "DatasetDriftDetected"
# The data fields of each type, as documented (the tests check every event against these).
DATA_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    MODEL_REGISTERED: ("modelName", "modelVersion", "modelTags", "modelProperties"),
    MODEL_DEPLOYED: (
        "serviceName", "serviceComputeType", "modelIds", "serviceTags", "serviceProperties"
    ),
    RUN_COMPLETED: (
        "experimentId", "experimentName", "runId", "runType", "runTags", "runProperties"
    ),
    RUN_STATUS_CHANGED: (
        "experimentId", "experimentName", "runId", "runType", "runTags", "runProperties",
        "runStatus",
    ),
    DATASET_DRIFT_DETECTED: (
        "dataDriftId", "dataDriftName", "runId", "baseDatasetId", "targetDatasetId",
        "driftCoefficient", "startTime", "endTime",
    ),
}  # fmt: skip
ENVELOPE_FIELDS: Final = (
    "id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", "metadataVersion"
)  # fmt: skip
# mlkube run phases as Azure ML run statuses (Running, Completed, Failed, Canceled, ...).
RUN_STATUS: Final = {
    "Running": "Running", "Succeeded": "Completed", "Failed": "Failed", "Cancelled": "Canceled"
}  # fmt: skip
COMPUTE_TYPE: Final = "Kubernetes"
UNKNOWN_TIME: Final = "0001-01-01T00:00:00Z"  # eventTime is required; should not happen
RUN_TYPES: Final = {
    c.BATCHJOB_STARTED.type: "batchjob",
    c.BATCHJOB_SUCCEEDED.type: "batchjob",
    c.BATCHJOB_FAILED.type: "batchjob",
    c.PIPELINERUN_STARTED.type: "pipelinerun",
    c.PIPELINERUN_SUCCEEDED.type: "pipelinerun",
    c.PIPELINERUN_FAILED.type: "pipelinerun",
}
# Which mlkube types an azureml sink gets (the others are not sent to it).
AZURE_TYPES: Final[dict[str, tuple[str, ...]]] = {
    c.MODEL_REGISTERED.type: (MODEL_REGISTERED,),
    c.DEPLOYMENT_READY.type: (MODEL_DEPLOYED,),
    c.DRIFT_DETECTED.type: (DATASET_DRIFT_DETECTED,),
    **{t: (RUN_STATUS_CHANGED,) for t in RUN_TYPES},
    c.BATCHJOB_SUCCEEDED.type: (RUN_COMPLETED, RUN_STATUS_CHANGED),
    c.PIPELINERUN_SUCCEEDED.type: (RUN_COMPLETED, RUN_STATUS_CHANGED),
}


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _model(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    subject = f"models/{data['name']}:{data['version']}"
    return subject, {
        "modelName": data["name"],
        "modelVersion": str(data["version"]),
        "modelTags": dict(data.get("labels") or {}),
        "modelProperties": {
            **dict(data.get("properties") or {}),
            **_strings({"framework": data.get("framework"), "uri": data.get("uri"),
                        "digest": data.get("digest")}),
        },
    }  # fmt: skip


def _deployed(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    version = data.get("modelVersion")
    model_id = f"{data['model']}:{version}" if version else str(data["model"])
    return f"endpoints/{data['endpoint']}", {
        "serviceName": data["endpoint"],
        "serviceComputeType": COMPUTE_TYPE,
        "modelIds": model_id,
        "serviceTags": {},
        "serviceProperties": _strings(
            {"deployment": data["deployment"], "url": data.get("url"),
             "modelDigest": data.get("modelDigest")}
        ),
    }  # fmt: skip


def _run(occurrence: Occurrence, status: bool) -> tuple[str, dict[str, Any]]:
    data = occurrence.data
    run_type = RUN_TYPES[occurrence.type]
    experiment = str(data.get("pipeline") or data.get("endpoint") or "")
    properties = _strings(
        {
            "namespace": occurrence.extensions.get(EXT_NAMESPACE),
            "uid": occurrence.extensions.get(EXT_UID),
            "phase": data.get("phase"),
            "deployment": data.get("deployment"),
            "model": data.get("model"),
            "outputUri": data.get("outputUri"),
            "trigger": data.get("trigger"),
            "producedModels": ",".join(data.get("producedModels") or []),
            "message": data.get("message"),
        }
    )
    out: dict[str, Any] = {
        "experimentId": experiment,
        "experimentName": experiment,
        "runId": data["name"],
        "runType": run_type,
        "runTags": {},
        "runProperties": properties,
    }
    if status:
        out["runStatus"] = RUN_STATUS.get(str(data.get("phase")), str(data.get("phase")))
    return f"experiments/{experiment}/runs/{data['name']}", out


def _drift(occurrence: Occurrence) -> tuple[str, dict[str, Any]]:
    data = occurrence.data
    monitor = f"{data['endpoint']}/{data['deployment']}"
    run_id = f"{monitor}/{data['startedAt']}"
    return f"datadrift/{monitor}/run/{data['startedAt']}", {
        "dataDriftId": monitor,
        "dataDriftName": monitor,
        "runId": run_id,
        "baseDatasetId": f"{data['model']}/baseline",
        "targetDatasetId": monitor,
        "driftCoefficient": data.get("driftedRatio"),
        "startTime": data["startedAt"],
        "endTime": occurrence.time or data["startedAt"],
    }


def _event_id(occurrence_id: str, event_type: str) -> str:
    """A GUID, stable per occurrence and Azure type (one occurrence may make two events)."""
    digest = hashlib.sha256(f"{occurrence_id}\0{event_type}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def to_event_grid(occurrence: Occurrence) -> list[dict[str, Any]]:
    """The Event Grid events for an occurrence (empty: Azure ML has no such event)."""
    out = []
    namespace = str(occurrence.extensions.get(EXT_NAMESPACE, ""))
    for azure_type in AZURE_TYPES.get(occurrence.type, ()):
        if azure_type == MODEL_REGISTERED:
            subject, data = _model(occurrence.data)
        elif azure_type == MODEL_DEPLOYED:
            subject, data = _deployed(occurrence.data)
        elif azure_type == DATASET_DRIFT_DETECTED:
            subject, data = _drift(occurrence)
        else:
            subject, data = _run(occurrence, status=azure_type == RUN_STATUS_CHANGED)
        out.append(
            {
                "id": _event_id(occurrence.id, azure_type),
                "topic": f"{GROUP_PATH}/namespaces/{namespace}",
                "subject": subject,
                "eventType": azure_type,
                "eventTime": occurrence.time or UNKNOWN_TIME,
                "data": data,
                "dataVersion": "1",
                "metadataVersion": "1",
            }
        )
    return out
