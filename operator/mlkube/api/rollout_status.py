"""`OnlineEndpoint.status.rollout`: where a rollout stands, and the CLI's requests to it.

Written by the operator only (docs/rollouts.md §4): the phase and step, the split the rollout
started from, the candidate's weight and mirror now, why it aborted, and each metric's counts and
last measurements with value and verdict (what `mlkube endpoint rollout status` prints). The
request the CLI writes in the `mlkube.dev/rollout-request` annotation (§5) is parsed here too, so
the CLI and the operator read one format.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, get_args

from pydantic import Field, ValidationError

from mlkube.api.common import (
    CONDITION_REASON_PATTERN,
    ApiModel,
    DnsLabel,
    Message,
    Timestamp,
)
from mlkube.api.rollout import MAX_ANALYSIS_METRICS, MAX_CONDITION, MAX_STEPS

RolloutPhase = Literal["Progressing", "Paused", "Promoted", "Aborted"]
ROLLOUT_PHASES: tuple[str, ...] = get_args(RolloutPhase)
ACTIVE_PHASES: tuple[str, ...] = ("Progressing", "Paused")
MetricPhase = Literal["Running", "Successful", "Failed", "Inconclusive", "Error"]
METRIC_PHASES: tuple[str, ...] = get_args(MetricPhase)
MeasurementPhase = Literal["Successful", "Failed", "Inconclusive", "Error", "NoData"]
MEASUREMENT_PHASES: tuple[str, ...] = get_args(MeasurementPhase)
# The same four as contract.ROLLOUT_ACTIONS (a unit test holds them equal).
RolloutAction = Literal["promote", "promote-full", "abort", "retry"]

MAX_MEASUREMENTS = 5  # the last ones kept per metric
MAX_REQUEST_ID = 64
MAX_REQUEST_BYTES = 1024

Count = Annotated[int, Field(ge=0)]
Reason = Annotated[str, Field(max_length=128, pattern=CONDITION_REASON_PATTERN)]
Percent = Annotated[int, Field(ge=0, le=100)]
Split = Annotated[dict[str, Percent], Field(max_length=16)]
ConditionText = Annotated[str, Field(max_length=MAX_CONDITION)]
Revision = Annotated[str, Field(max_length=128)]
RequestId = Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID)]


class RolloutMeasurement(ApiModel):
    """One measurement of a metric."""

    at: Timestamp
    """When it was taken."""
    phase: MeasurementPhase
    """Successful, Failed, Inconclusive, Error (provider failed) or NoData."""
    value: float | None = None
    """The result the conditions saw (absent without data or on error)."""
    candidate: float | None = None
    """The candidate's value (builtin metrics)."""
    stable: float | None = None
    """The stable's value (builtin metrics compared with ratio or difference)."""
    samples: Count | None = None
    """Samples behind the value (requests, compared answers, drift rows)."""
    message: Message | None = None
    """Why it is Error or NoData."""


class RolloutMetricStatus(ApiModel):
    """Where one metric of the current step (or of the background analysis) stands."""

    name: DnsLabel
    """Metric name."""
    background: bool = False
    """Part of the background analysis (else of the current analysis step)."""
    phase: MetricPhase = "Running"
    """Running, Successful, Failed, Inconclusive or Error."""
    condition: ConditionText = ""
    """The successCondition."""
    failure_condition: ConditionText | None = None
    """The failureCondition, if any."""
    count: Count = 0
    """Measurements taken."""
    successful: Count = 0
    """Successful measurements."""
    failed: Count = 0
    """Failed measurements (no data counts here under noDataPolicy Fail)."""
    inconclusive: Count = 0
    """Inconclusive measurements (no data counts here under noDataPolicy Inconclusive)."""
    errors: Count = 0
    """Measurements the provider failed."""
    consecutive_errors: Count = 0
    """Provider errors in a row."""
    no_data: Count = 0
    """Measurements without enough samples."""
    next_measurement_at: Timestamp | None = None
    """When the next measurement is due."""
    measurements: Annotated[list[RolloutMeasurement], Field(max_length=MAX_MEASUREMENTS)] = Field(
        default_factory=list
    )
    """The last measurements, oldest first."""
    message: Message | None = None
    """Why the metric is in its phase."""


class RolloutAbort(ApiModel):
    """Why a rollout was aborted."""

    metric: DnsLabel | None = None
    """The metric that failed (absent for a manual abort)."""
    value: float | None = None
    """Its last measured value."""
    condition: ConditionText | None = None
    """The condition it was judged by."""
    message: Message = ""
    """The whole story, as in the Stalled condition."""


class RolloutStatus(ApiModel):
    """The rollout the operator runs for the current spec (its revision)."""

    revision: Revision = ""
    """sha256 over spec.rollout, traffic, mirror, the candidate's spec and the stable's name."""
    phase: RolloutPhase
    """Progressing, Paused, Promoted or Aborted."""
    reason: Reason | None = None
    """Why, in CamelCase: InitialDeploy, WaitingForCandidate, Pause, Inconclusive, ..."""
    message: Message = ""
    """Human-readable state, e.g. step 2/6: analysis errors 2/3 measurements."""
    step_index: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    """Current step, from 0 (= steps once all steps are done)."""
    steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    """Number of steps in the plan."""
    step_started_at: Timestamp | None = None
    """When the current step started."""
    started_at: Timestamp | None = None
    """When the rollout started."""
    finished_at: Timestamp | None = None
    """When it was promoted or aborted."""
    start_traffic: Split = Field(default_factory=dict)
    """The split the rollout started from (and an abort returns to)."""
    weight: Percent = 0
    """The candidate's live weight now."""
    mirror: Percent = 0
    """The candidate's mirrored percent now."""
    abort: RolloutAbort | None = None
    """Why it aborted (phase Aborted)."""
    scaled_down: bool = False
    """The candidate runs 0 replicas after an abort (abortScaleDownDelay passed)."""
    last_request: RequestId | None = None
    """Id of the last CLI request handled (mlkube.dev/rollout-request)."""
    metrics: Annotated[list[RolloutMetricStatus], Field(max_length=2 * MAX_ANALYSIS_METRICS)] = (
        Field(default_factory=list)
    )
    """The current step's metrics and the background ones."""


class RolloutRequest(ApiModel):
    """A CLI request in the mlkube.dev/rollout-request annotation; acted on once per id."""

    action: RolloutAction
    """promote, promote-full, abort or retry."""
    id: RequestId
    """Unique per request (a uuid)."""
    revision: Revision
    """The status.rollout.revision it was made for; ignored on another revision."""

    def to_annotation(self) -> str:
        """The annotation value: compact JSON, keys in a fixed order."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"))


def parse_rollout_request(text: str) -> RolloutRequest:
    """The request in an annotation value; ValueError saying what is wrong."""
    if len(text.encode()) > MAX_REQUEST_BYTES:
        raise ValueError(f"rollout request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        return RolloutRequest.model_validate_json(text)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in err.errors()
        )
        raise ValueError(f"invalid rollout request: {problems}") from None
