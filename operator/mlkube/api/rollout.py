"""`OnlineEndpoint.spec.rollout`: a progressive rollout of a candidate deployment over a stable one.

The field names and rules are fixed by docs/rollouts.md §1. Rules that only need the rollout
itself (steps, metrics, providers) live here; the ones that need the endpoint's deployments and
traffic (stable/candidate exist, the candidate has weight) are on `OnlineEndpointSpec`
(api/endpoint.py). Every rule is a CEL marker with its own message for `kubectl apply` and the
same check in pydantic validation for the CLI and the operator. Lists are bounded (steps ≤ 32,
metrics ≤ 16, names per analysis ≤ 16) so the cross-list rules fit the API server's CEL cost
budget. The status side is api/rollout_status.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from mlkube.api.common import MAX_URI_LENGTH, ApiModel, DnsLabel
from mlkube.api.duration import Duration
from mlkube.api.markers import ListSet, Rule

MAX_STEPS = 32
MAX_METRICS = 16
MAX_ANALYSIS_METRICS = 16
MAX_CONDITION = 1024
MAX_QUERY = 4096
MAX_JSON_PATH = 256
MAX_LIMIT = 10_000

BuiltinType = Literal["errorRate", "latency", "agreement", "inputDrift", "predictionDrift"]
BUILTIN_TYPES: tuple[str, ...] = get_args(BuiltinType)
Compare = Literal["absolute", "ratio", "difference"]
COMPARES: tuple[str, ...] = get_args(Compare)
NoDataPolicy = Literal["Fail", "Inconclusive", "Ignore"]
NO_DATA_POLICIES: tuple[str, ...] = get_args(NoDataPolicy)

HTTP_URL_PATTERN = r"^https?://\S+$"
# The jsonPath subset the web provider reads: `$`, `.name` and `[index]` segments.
JSON_PATH_PATTERN = r"^\$(\.[A-Za-z_][-A-Za-z0-9_]*|\[[0-9]+\])*$"
# Whole seconds or more (no ms) and not zero: the shortest interval is 1s.
INTERVAL_PATTERN = r"^([0-9]+(s|m|h|d))+$"

MSG_STEP_ONE = "a rollout step needs exactly one of setWeight, setMirror, pause, analysis"
MSG_PROVIDER_ONE = "a metric provider needs exactly one of builtin, prometheus, web"
MSG_QUANTILE = "builtin.quantile is required for type latency and only allowed there"
MSG_AGREEMENT_COMPARE = (
    "builtin type agreement only takes compare absolute (agreement already compares with stable)"
)
MSG_LIMITS = "failureLimit and inconclusiveLimit must be >= 0"
MSG_INTERVAL = "a metric interval is at least 1s: whole s, m, h or d (no ms), not zero"
MSG_METRIC_NAMES_UNIQUE = "spec.rollout.metrics names must be unique"
MSG_ANALYSIS_METRICS = "spec.rollout.steps[].analysis.metrics must name spec.rollout.metrics"
MSG_BACKGROUND_METRICS = "spec.rollout.backgroundAnalysis.metrics must name spec.rollout.metrics"
MSG_STARTING_STEP = (
    "spec.rollout.backgroundAnalysis.startingStep must be less than the number of steps"
)
MSG_STABLE_IS_CANDIDATE = "spec.rollout.stable and spec.rollout.candidate must differ"

MetricName = DnsLabel
MetricNames = Annotated[
    list[MetricName], ListSet(), Field(min_length=1, max_length=MAX_ANALYSIS_METRICS)
]
HttpUrl = Annotated[str, Field(min_length=1, max_length=MAX_URI_LENGTH, pattern=HTTP_URL_PATTERN)]
CelCondition = Annotated[str, Field(min_length=1, max_length=MAX_CONDITION)]


def _check_interval(text: str) -> str:
    if not re.fullmatch(INTERVAL_PATTERN, text) or not re.search("[1-9]", text):
        raise ValueError(MSG_INTERVAL)
    return text


Interval = Annotated[
    Duration,
    AfterValidator(_check_interval),
    Rule(f"self.matches('{INTERVAL_PATTERN}') && self.matches('[1-9]')", message=MSG_INTERVAL),
]


class RolloutPause(ApiModel):
    """Wait: for a duration, or (without one) until `mlkube endpoint rollout promote`."""

    duration: Duration | None = None
    """How long to wait; without it the rollout is Paused until a promote request."""


class RolloutAnalysis(ApiModel):
    """Run the named metrics afresh; the step completes when all of them succeed."""

    metrics: MetricNames
    """Names of spec.rollout.metrics; any Failed or Error aborts, any Inconclusive pauses."""


class RolloutStep(ApiModel):
    """One step of the plan: exactly one of setWeight, setMirror, pause, analysis."""

    kube_validations = (
        Rule(
            "[has(self.setWeight), has(self.setMirror), has(self.pause), has(self.analysis)]"
            ".filter(x, x).size() == 1",
            message=MSG_STEP_ONE,
        ),
    )

    set_weight: Annotated[int, Field(ge=0, le=100)] | None = None
    """Candidate's share of live traffic in percent (the other deployments share the rest);
    mirroring off."""
    set_mirror: Annotated[int, Field(ge=0, le=100)] | None = None
    """Candidate gets no live traffic and this percent of requests as mirrored copies."""
    pause: RolloutPause | None = None
    """Wait for a duration or for a promote request."""
    analysis: RolloutAnalysis | None = None
    """Measure the candidate; advance only when every metric succeeds."""

    @model_validator(mode="after")
    def _one(self) -> RolloutStep:
        fields = (self.set_weight, self.set_mirror, self.pause, self.analysis)
        if sum(f is not None for f in fields) != 1:
            raise ValueError(MSG_STEP_ONE)
        return self

    def describe(self) -> str:
        """The step in a few words, e.g. `setWeight 10` or `analysis errors, p99`."""
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}"
        if self.set_mirror is not None:
            return f"setMirror {self.set_mirror}"
        if self.pause is not None:
            return (
                f"pause {self.pause.duration}" if self.pause.duration else "pause (until promote)"
            )
        assert self.analysis is not None  # exactly one field is set (validated above)
        return "analysis " + ", ".join(self.analysis.metrics)


class BackgroundAnalysis(ApiModel):
    """Metrics measured from startingStep until the rollout ends (Failed/Error aborts)."""

    metrics: MetricNames
    """Names of spec.rollout.metrics."""
    starting_step: Annotated[int, Field(ge=0, le=MAX_STEPS - 1)] = 0
    """Index (from 0) of the step the background analysis starts at."""


class BuiltinProvider(ApiModel):
    """A metric the operator measures itself from the routers' metrics and the drift status."""

    kube_validations = (
        Rule("has(self.quantile) == (self.type == 'latency')", message=MSG_QUANTILE),
        Rule(
            "self.type != 'agreement' || !has(self.compare) || self.compare == 'absolute'",
            message=MSG_AGREEMENT_COMPARE,
        ),
    )

    type: BuiltinType
    """errorRate, latency, agreement (mirrored answers equal to stable's), inputDrift
    (drifted feature ratio) or predictionDrift (1 when the prediction column drifted)."""
    quantile: Annotated[float, Field(gt=0, lt=1)] | None = None
    """Latency quantile, e.g. 0.99 (latency only, required there)."""
    compare: Compare = "absolute"
    """absolute (the candidate's value), ratio (candidate / stable) or difference
    (candidate - stable)."""

    @model_validator(mode="after")
    def _check(self) -> BuiltinProvider:
        if (self.quantile is not None) != (self.type == "latency"):
            raise ValueError(MSG_QUANTILE)
        if self.type == "agreement" and self.compare != "absolute":
            raise ValueError(MSG_AGREEMENT_COMPARE)
        return self


class PrometheusProvider(ApiModel):
    """An instant query against a Prometheus server (a scalar or a one-element vector)."""

    address: HttpUrl
    """Base URL of the Prometheus server, e.g. http://prometheus.monitoring:9090."""
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY)]
    """PromQL query."""
    timeout: Duration = "5s"
    """Longest a query may take (default 5s)."""


class WebProvider(ApiModel):
    """An HTTP GET whose JSON answer holds the value."""

    url: HttpUrl
    """URL to GET."""
    json_path: Annotated[
        str, Field(min_length=1, max_length=MAX_JSON_PATH, pattern=JSON_PATH_PATTERN)
    ] = "$"
    """Where the number is in the answer: `$`, `.name` and `[index]` segments, e.g.
    $.data.value or $.results[0].score."""
    timeout: Duration = "5s"
    """Longest a request may take (default 5s)."""


class MetricProvider(ApiModel):
    """Where a metric's value comes from: exactly one of builtin, prometheus, web."""

    kube_validations = (
        Rule(
            "[has(self.builtin), has(self.prometheus), has(self.web)].filter(x, x).size() == 1",
            message=MSG_PROVIDER_ONE,
        ),
    )

    builtin: BuiltinProvider | None = None
    """Measured by the operator (no Prometheus needed)."""
    prometheus: PrometheusProvider | None = None
    """A PromQL query."""
    web: WebProvider | None = None
    """A JSON HTTP endpoint."""

    @model_validator(mode="after")
    def _one(self) -> MetricProvider:
        if sum(p is not None for p in (self.builtin, self.prometheus, self.web)) != 1:
            raise ValueError(MSG_PROVIDER_ONE)
        return self


class RolloutMetric(ApiModel):
    """A measurement repeated every interval and judged by CEL conditions."""

    kube_validations = (
        Rule("self.failureLimit >= 0 && self.inconclusiveLimit >= 0", message=MSG_LIMITS),
    )

    name: MetricName
    """Metric name, unique in the rollout; steps and backgroundAnalysis refer to it."""
    interval: Interval = "30s"
    """Time between measurements (default 30s, at least 1s)."""
    count: Annotated[int, Field(ge=0, le=MAX_LIMIT)] = 1
    """Measurements needed for success (default 1); 0 = measure until the analysis stops."""
    success_condition: CelCondition
    """CEL over the measured value (double variables result, candidate, stable), e.g.
    result <= 0.01."""
    failure_condition: CelCondition | None = None
    """CEL that marks a measurement Failed; without it a false successCondition fails, with
    it a measurement matching neither is Inconclusive."""
    failure_limit: Annotated[int, Field(le=MAX_LIMIT)] = 0
    """Failed measurements tolerated (default 0)."""
    inconclusive_limit: Annotated[int, Field(le=MAX_LIMIT)] = 0
    """Inconclusive measurements tolerated before the rollout pauses (default 0)."""
    consecutive_error_limit: Annotated[int, Field(ge=0, le=MAX_LIMIT)] = 4
    """Provider errors in a row tolerated before the metric is Error (default 4)."""
    no_data_policy: NoDataPolicy = "Inconclusive"
    """A measurement without data counts as Fail, Inconclusive (default) or is ignored
    (Ignore: the analysis waits for data)."""
    min_sample_count: Annotated[int, Field(ge=1, le=1_000_000_000)] = 1
    """A measurement over fewer samples (requests, compared answers, drift rows) has no data."""
    provider: MetricProvider
    """Where the value comes from."""

    @model_validator(mode="after")
    def _check(self) -> RolloutMetric:
        if self.failure_limit < 0 or self.inconclusive_limit < 0:
            raise ValueError(f"metric {self.name}: {MSG_LIMITS}")
        return self


def _names_exist(names: str) -> str:
    return f"{names}.all(n, has(self.metrics) && self.metrics.exists(m, m.name == n))"


class RolloutSpec(ApiModel):
    """Move live traffic from stable to candidate step by step, gated on measured metrics;
    abort rolls back to the split it started from (docs/rollouts.md)."""

    kube_validations = (
        Rule("self.stable != self.candidate", message=MSG_STABLE_IS_CANDIDATE),
        Rule(
            "!has(self.metrics)"
            " || self.metrics.all(m, self.metrics.exists_one(x, x.name == m.name))",
            message=MSG_METRIC_NAMES_UNIQUE,
            field_path=".metrics",
        ),
        Rule(
            "self.steps.all(s, !has(s.analysis) || " + _names_exist("s.analysis.metrics") + ")",
            message=MSG_ANALYSIS_METRICS,
            field_path=".steps",
        ),
        Rule(
            "!has(self.backgroundAnalysis) || " + _names_exist("self.backgroundAnalysis.metrics"),
            message=MSG_BACKGROUND_METRICS,
            field_path=".backgroundAnalysis",
        ),
        Rule(
            "!has(self.backgroundAnalysis) || !has(self.backgroundAnalysis.startingStep)"
            " || self.backgroundAnalysis.startingStep < size(self.steps)",
            message=MSG_STARTING_STEP,
            field_path=".backgroundAnalysis",
        ),
    )

    stable: DnsLabel
    """Deployment compared against and rolled back to."""
    candidate: DnsLabel
    """Deployment rolled in; needs weight > 0 in spec.traffic (the split it is promoted to)."""
    steps: Annotated[list[RolloutStep], Field(min_length=1, max_length=MAX_STEPS)]
    """The plan, in order; after the last step the candidate is promoted to spec.traffic."""
    background_analysis: BackgroundAnalysis | None = None
    """Metrics measured alongside the steps."""
    abort_scale_down_delay: Duration = "30s"
    """After an abort, how long the candidate's pods are kept before it runs 0 replicas."""
    metrics: Annotated[list[RolloutMetric], Field(max_length=MAX_METRICS)] = Field(
        default_factory=list
    )
    """Metrics that analysis steps and backgroundAnalysis refer to by name."""

    @model_validator(mode="after")
    def _check(self) -> RolloutSpec:
        if self.stable == self.candidate:
            raise ValueError(MSG_STABLE_IS_CANDIDATE)
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(MSG_METRIC_NAMES_UNIQUE)
        for step in self.steps:
            if step.analysis and not set(step.analysis.metrics) <= set(names):
                raise ValueError(MSG_ANALYSIS_METRICS)
        background = self.background_analysis
        if background is not None:
            if not set(background.metrics) <= set(names):
                raise ValueError(MSG_BACKGROUND_METRICS)
            if background.starting_step >= len(self.steps):
                raise ValueError(MSG_STARTING_STEP)
        return self

    def metric(self, name: str) -> RolloutMetric | None:
        """The metric called `name`, if declared."""
        return next((m for m in self.metrics if m.name == name), None)
