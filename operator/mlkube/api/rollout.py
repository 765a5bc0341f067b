"""`OnlineEndpoint.spec.rollout`: a progressive rollout of a candidate deployment over a stable one.

The field names and rules are fixed by docs/rollouts.md §1. Rules over the rollout itself
(steps, metric names) live here, one metric and its providers in api/rollout_metric.py (every
name of which is re-exported here); the ones that need the endpoint's deployments and traffic
(stable/candidate exist, the candidate has weight) are on `OnlineEndpointSpec`
(api/endpoint.py). Every rule is a CEL marker with its own message for `kubectl apply` and the
same check in pydantic validation for the CLI and the operator. Lists are bounded (steps ≤ 32,
metrics ≤ 16, names per analysis ≤ 16) so the cross-list rules fit the API server's CEL cost
budget. The status side is api/rollout_status.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from mlkube.api.common import ApiModel, DnsLabel
from mlkube.api.duration import Duration
from mlkube.api.markers import ListSet, Rule
from mlkube.api.rollout_metric import BUILTIN_TYPES as BUILTIN_TYPES
from mlkube.api.rollout_metric import COMPARES as COMPARES
from mlkube.api.rollout_metric import HTTP_URL_PATTERN as HTTP_URL_PATTERN
from mlkube.api.rollout_metric import INTERVAL_PATTERN as INTERVAL_PATTERN
from mlkube.api.rollout_metric import JSON_PATH_PATTERN as JSON_PATH_PATTERN
from mlkube.api.rollout_metric import MAX_CONDITION as MAX_CONDITION
from mlkube.api.rollout_metric import MAX_JSON_PATH as MAX_JSON_PATH
from mlkube.api.rollout_metric import MAX_LIMIT as MAX_LIMIT
from mlkube.api.rollout_metric import MAX_QUERY as MAX_QUERY
from mlkube.api.rollout_metric import MSG_AGREEMENT_COMPARE as MSG_AGREEMENT_COMPARE
from mlkube.api.rollout_metric import MSG_INTERVAL as MSG_INTERVAL
from mlkube.api.rollout_metric import MSG_LIMITS as MSG_LIMITS
from mlkube.api.rollout_metric import MSG_PROVIDER_ONE as MSG_PROVIDER_ONE
from mlkube.api.rollout_metric import MSG_QUANTILE as MSG_QUANTILE
from mlkube.api.rollout_metric import NO_DATA_POLICIES as NO_DATA_POLICIES
from mlkube.api.rollout_metric import BuiltinProvider as BuiltinProvider
from mlkube.api.rollout_metric import BuiltinType as BuiltinType
from mlkube.api.rollout_metric import CelCondition as CelCondition
from mlkube.api.rollout_metric import Compare as Compare
from mlkube.api.rollout_metric import HttpUrl as HttpUrl
from mlkube.api.rollout_metric import Interval as Interval
from mlkube.api.rollout_metric import MetricName as MetricName
from mlkube.api.rollout_metric import MetricProvider as MetricProvider
from mlkube.api.rollout_metric import NoDataPolicy as NoDataPolicy
from mlkube.api.rollout_metric import PrometheusProvider as PrometheusProvider
from mlkube.api.rollout_metric import RolloutMetric as RolloutMetric
from mlkube.api.rollout_metric import WebProvider as WebProvider

MAX_STEPS = 32
MAX_METRICS = 16
MAX_ANALYSIS_METRICS = 16

MSG_STEP_ONE = "a rollout step needs exactly one of setWeight, setMirror, pause, analysis"
MSG_METRIC_NAMES_UNIQUE = "spec.rollout.metrics names must be unique"
MSG_ANALYSIS_METRICS = "spec.rollout.steps[].analysis.metrics must name spec.rollout.metrics"
MSG_BACKGROUND_METRICS = "spec.rollout.backgroundAnalysis.metrics must name spec.rollout.metrics"
MSG_STARTING_STEP = (
    "spec.rollout.backgroundAnalysis.startingStep must be less than the number of steps"
)
MSG_STABLE_IS_CANDIDATE = "spec.rollout.stable and spec.rollout.candidate must differ"

MetricNames = Annotated[
    list[MetricName], ListSet(), Field(min_length=1, max_length=MAX_ANALYSIS_METRICS)
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
