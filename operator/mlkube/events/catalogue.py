"""The versioned event catalogue: every CloudEvent type mlkube emits, with its data model.

A type is `dev.mlkube.<name>.v<version>`; consumers subscribe to it by name (sinks filter on
it), and its JSON Schema is docs/events/<type>.json, generated from the data model. A breaking
change to the data is a new version, never an edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mlkube.contract import (
    KIND_BATCH_JOB,
    KIND_MODEL,
    KIND_ONLINE_ENDPOINT,
    KIND_PIPELINE_RUN,
)
from mlkube.events import data as d

TYPE_PREFIX: Final = "dev.mlkube."
# Where the schemas are published (docs/events/ in the repository).
SCHEMA_BASE_URL: Final = "https://raw.githubusercontent.com/mlkube/mlkube/main/docs/events/"


@dataclass(frozen=True)
class EventType:
    """One catalogue entry."""

    name: str  # e.g. model.registered
    version: int
    kind: str  # the kind whose state implies it
    when: str  # one line for the docs
    data: type[d.EventData]

    @property
    def type(self) -> str:
        return f"{TYPE_PREFIX}{self.name}.v{self.version}"

    @property
    def schema_file(self) -> str:
        return f"{self.type}.json"

    @property
    def dataschema(self) -> str:
        return SCHEMA_BASE_URL + self.schema_file


MODEL_REGISTERED = EventType(
    "model.registered", 1, KIND_MODEL, "a Model becomes Ready the first time", d.ModelRegistered
)
MODEL_VERIFIED = EventType(
    "model.verified", 1, KIND_MODEL, "a Model's artifact digest verified (each digest)",
    d.ModelVerified,
)  # fmt: skip
MODEL_DELETED = EventType("model.deleted", 1, KIND_MODEL, "a Model deleted", d.ModelDeleted)
DEPLOYMENT_READY = EventType(
    "endpoint.deployment.ready", 1, KIND_ONLINE_ENDPOINT,
    "a deployment serves a Model with all replicas ready (per deployment x Model)",
    d.DeploymentReady,
)  # fmt: skip
TRAFFIC_CHANGED = EventType(
    "endpoint.traffic.changed", 1, KIND_ONLINE_ENDPOINT, "the applied split changed",
    d.TrafficChanged,
)  # fmt: skip
ROLLOUT_STARTED = EventType(
    "rollout.started", 1, KIND_ONLINE_ENDPOINT, "a rollout revision started (or was retried)",
    d.RolloutStarted,
)  # fmt: skip
ROLLOUT_STEP = EventType(
    "rollout.step", 1, KIND_ONLINE_ENDPOINT, "a rollout step reached", d.RolloutStep
)
ROLLOUT_PAUSED = EventType(
    "rollout.paused", 1, KIND_ONLINE_ENDPOINT, "a rollout paused (pause step or inconclusive)",
    d.RolloutPaused,
)  # fmt: skip
ROLLOUT_PROMOTED = EventType(
    "rollout.promoted", 1, KIND_ONLINE_ENDPOINT, "a rollout promoted", d.RolloutPromoted
)
ROLLOUT_ABORTED = EventType(
    "rollout.aborted", 1, KIND_ONLINE_ENDPOINT, "a rollout aborted", d.RolloutAborted
)
DRIFT_DETECTED = EventType(
    "drift.detected", 1, KIND_ONLINE_ENDPOINT, "a deployment's drift episode started",
    d.DriftDetected,
)  # fmt: skip
DRIFT_ENDED = EventType(
    "drift.ended", 1, KIND_ONLINE_ENDPOINT, "a deployment's drift episode ended", d.DriftEnded
)
BATCHJOB_STARTED = EventType(
    "batchjob.started", 1, KIND_BATCH_JOB, "a BatchJob started scoring", d.BatchJobPhase
)
BATCHJOB_SUCCEEDED = EventType(
    "batchjob.succeeded", 1, KIND_BATCH_JOB, "a BatchJob succeeded", d.BatchJobPhase
)
BATCHJOB_FAILED = EventType(
    "batchjob.failed", 1, KIND_BATCH_JOB, "a BatchJob failed or was cancelled", d.BatchJobPhase
)
PIPELINERUN_STARTED = EventType(
    "pipelinerun.started", 1, KIND_PIPELINE_RUN, "a PipelineRun started", d.PipelineRunPhase
)
PIPELINERUN_SUCCEEDED = EventType(
    "pipelinerun.succeeded", 1, KIND_PIPELINE_RUN, "a PipelineRun succeeded", d.PipelineRunPhase
)
PIPELINERUN_FAILED = EventType(
    "pipelinerun.failed", 1, KIND_PIPELINE_RUN, "a PipelineRun failed or was cancelled",
    d.PipelineRunPhase,
)  # fmt: skip

CATALOGUE: Final[tuple[EventType, ...]] = (
    MODEL_REGISTERED,
    MODEL_VERIFIED,
    MODEL_DELETED,
    DEPLOYMENT_READY,
    TRAFFIC_CHANGED,
    ROLLOUT_STARTED,
    ROLLOUT_STEP,
    ROLLOUT_PAUSED,
    ROLLOUT_PROMOTED,
    ROLLOUT_ABORTED,
    DRIFT_DETECTED,
    DRIFT_ENDED,
    BATCHJOB_STARTED,
    BATCHJOB_SUCCEEDED,
    BATCHJOB_FAILED,
    PIPELINERUN_STARTED,
    PIPELINERUN_SUCCEEDED,
    PIPELINERUN_FAILED,
)
BY_TYPE: Final[dict[str, EventType]] = {t.type: t for t in CATALOGUE}
EVENT_TYPES: Final[tuple[str, ...]] = tuple(BY_TYPE)


def lookup(event_type: str) -> EventType:
    """The catalogue entry of a type; KeyError for a type mlkube does not emit."""
    return BY_TYPE[event_type]


def type_matches(event_type: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """An EventSink's `types` filter: empty matches all; an entry ending in `*` is a prefix."""
    if not patterns:
        return True
    for pattern in patterns:
        if pattern.endswith("*"):
            if event_type.startswith(pattern[:-1]):
                return True
        elif event_type == pattern:
            return True
    return False
