"""PROVISIONAL stand-in for helper rkinds' rollout API (docs/rollouts.md §1, §4): replaced by
theirs at merge. Only what the pure state machines read and write."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlkube.api.common import ApiModel

NoDataPolicy = Literal["Fail", "Inconclusive", "Ignore"]
Compare = Literal["absolute", "ratio", "difference"]
MetricPhase = Literal["Running", "Successful", "Failed", "Inconclusive", "Error"]
MeasurementPhase = Literal["Successful", "Failed", "Inconclusive", "Error", "NoData"]
RolloutPhase = Literal["Progressing", "Paused", "Promoted", "Aborted"]


class BuiltinProvider(ApiModel):
    type: Literal["errorRate", "latency", "agreement", "inputDrift", "predictionDrift"]
    quantile: float | None = None
    compare: Compare = "absolute"


class PrometheusProvider(ApiModel):
    address: str
    query: str
    timeout: str = "5s"


class WebProvider(ApiModel):
    url: str
    json_path: str
    timeout: str = "5s"


class MetricProvider(ApiModel):
    builtin: BuiltinProvider | None = None
    prometheus: PrometheusProvider | None = None
    web: WebProvider | None = None


class RolloutMetric(ApiModel):
    name: str
    interval: str = "30s"
    count: int = 1
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    no_data_policy: NoDataPolicy = "Inconclusive"
    min_sample_count: int = 1
    provider: MetricProvider


class Pause(ApiModel):
    duration: str | None = None


class StepAnalysis(ApiModel):
    metrics: list[str]


class RolloutStep(ApiModel):
    set_weight: int | None = None
    set_mirror: int | None = None
    pause: Pause | None = None
    analysis: StepAnalysis | None = None


class BackgroundAnalysis(ApiModel):
    metrics: list[str]
    starting_step: int = 0


class RolloutSpec(ApiModel):
    stable: str
    candidate: str
    steps: list[RolloutStep] = Field(default_factory=list)
    background_analysis: BackgroundAnalysis | None = None
    abort_scale_down_delay: str = "30s"
    metrics: list[RolloutMetric] = Field(default_factory=list)


class Measurement(ApiModel):
    at: str
    phase: MeasurementPhase
    value: float | None = None
    candidate: float | None = None
    stable: float | None = None
    samples: int | None = None
    message: str | None = None


class MetricStatus(ApiModel):
    name: str
    background: bool = False
    phase: MetricPhase = "Running"
    condition: str | None = None
    failure_condition: str | None = None
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    no_data: int = 0
    next_measurement_at: str | None = None
    measurements: list[Measurement] = Field(default_factory=list)


class RolloutAbort(ApiModel):
    metric: str | None = None
    value: float | None = None
    condition: str | None = None
    message: str = ""


class RolloutStatus(ApiModel):
    revision: str
    phase: RolloutPhase
    reason: str = ""
    message: str = ""
    step_index: int = 0
    steps: int = 0
    step_started_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    start_traffic: dict[str, int] = Field(default_factory=dict)
    weight: int = 0
    mirror: int = 0
    abort: RolloutAbort | None = None
    scaled_down: bool = False
    last_request: str | None = None
    metrics: list[MetricStatus] = Field(default_factory=list)
