"""A rollout metric (`spec.rollout.metrics[]`): its schedule, CEL conditions and provider.

Split from api/rollout.py (which re-exports every name here): what one metric is, measured every
`interval` by the builtin, prometheus or web provider and judged by `successCondition` /
`failureCondition` (docs/rollouts.md §1, §3). The analysis that runs it is
reconcile/rollout_analysis.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from mlkube.api.common import MAX_URI_LENGTH, ApiModel, DnsLabel
from mlkube.api.duration import Duration
from mlkube.api.markers import Rule

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

MSG_PROVIDER_ONE = "a metric provider needs exactly one of builtin, prometheus, web"
MSG_QUANTILE = "builtin.quantile is required for type latency and only allowed there"
MSG_AGREEMENT_COMPARE = (
    "builtin type agreement only takes compare absolute (agreement already compares with stable)"
)
MSG_LIMITS = "failureLimit and inconclusiveLimit must be >= 0"
MSG_INTERVAL = "a metric interval is at least 1s: whole s, m, h or d (no ms), not zero"

MetricName = DnsLabel
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
    """Longest a query may take (default 5s; at most the metric's interval and 30s)."""


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
    """Longest a request may take (default 5s; at most the metric's interval and 30s)."""


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
    result <= 0.01; a rollout whose conditions do not compile stops before its first step."""
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
