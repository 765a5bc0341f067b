"""The shared vocabulary of pipeline steps, and the built-in steps' blocks.

Names, references to other steps ({step, output}) and the `registerModel`, `evaluate`,
`deploy` and `batch` blocks that the operator runs itself (docs/pipelines.md §1, §4). The step
model that carries them is api/pipeline_step.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from mlkube.api.batch import InputFormat, ObjectName
from mlkube.api.common import MAX_SHORT_TEXT, ApiModel, DnsLabel, LabelValue, Text, Uri
from mlkube.api.endpoint import Runtime
from mlkube.api.markers import Rule
from mlkube.api.model import Entrypoint, Framework

MAX_STEP_NAME = 40
STEP_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Parameter, input and output names become env names (MLKUBE_INPUT_<NAME>), file names and
# template/CEL identifiers, so they are identifiers with dashes allowed.
IDENT_PATTERN = r"^[A-Za-z_][-A-Za-z0-9_]*$"
MAX_IO = 32

MSG_DEPLOY_ONE = "deploy needs exactly one of canaryWeight, mirrorPercent"
MSG_BATCH_INPUT_ONE = "batch.input needs exactly one of uri, fromStep"
MSG_METRIC_BOUND = "an evaluate metric needs min, max or both"
MSG_METRIC_RANGE = "an evaluate metric's min must not exceed its max"

StepName = Annotated[str, Field(min_length=1, max_length=MAX_STEP_NAME, pattern=STEP_NAME_PATTERN)]
Identifier = Annotated[str, Field(min_length=1, max_length=63, pattern=IDENT_PATTERN)]


class StepOutputRef(ApiModel):
    """An output of another step (the reference makes that step a dependency)."""

    step: StepName
    """Name of the producing step."""
    output: Identifier
    """Name of one of its declared outputs."""


class StepRef(ApiModel):
    """Another step of the pipeline (the reference makes it a dependency)."""

    step: StepName
    """Step name."""


class RegisterModelStep(ApiModel):
    """Create a Model from an artifact output, with lineage filled from the run."""

    artifact: StepOutputRef
    """The artifact output holding the model files."""
    model_name: DnsLabel
    """spec.modelName of the new Model, e.g. credit-risk."""
    version: Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT)] = "auto"
    """auto (one more than the highest registered integer version) or a template."""
    framework: Framework
    """Framework of the artifact: sklearn, onnx, mlflow or custom (needs entrypoint)."""
    entrypoint: Entrypoint | None = None
    """Scoring script for custom models."""
    metrics_from: Annotated[list[StepOutputRef], Field(max_length=MAX_IO)] = Field(
        default_factory=list
    )
    """Metrics outputs copied into spec.lineage.metrics."""
    baseline: StepOutputRef | None = None
    """An artifact output holding the drift baseline profile (`mlkube model profile`): it
    becomes the Model's spec.baseline {uri, digest}, so a retrained model keeps drift
    monitoring wherever it is deployed with drift enabled."""
    tags: Annotated[dict[str, LabelValue], Field(max_length=16)] = Field(default_factory=dict)
    """Labels put on the Model."""
    description: Text | None = None
    """The Model's description."""


class MetricThreshold(ApiModel):
    """A bound on one metric of an upstream step."""

    kube_validations = (
        Rule("has(self.min) || has(self.max)", message=MSG_METRIC_BOUND),
        Rule("!has(self.min) || !has(self.max) || self.min <= self.max", message=MSG_METRIC_RANGE),
    )

    name: Annotated[str, Field(min_length=1, max_length=128)]
    """Metric name (a key of the metrics output)."""
    from_: Annotated[StepOutputRef, Field(alias="from")]
    """The metrics output."""
    min: float | None = None
    """Lowest passing value."""
    max: float | None = None
    """Highest passing value."""

    @model_validator(mode="after")
    def _bounds(self) -> MetricThreshold:
        if self.min is None and self.max is None:
            raise ValueError(f"metric {self.name}: {MSG_METRIC_BOUND}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"metric {self.name}: {MSG_METRIC_RANGE}")
        return self


class CompareWith(ApiModel):
    """Compare a metric with the same metric of the Model serving on an endpoint."""

    endpoint: ObjectName
    """OnlineEndpoint whose serving Model (the deployment with most traffic) is the baseline."""
    deployment: DnsLabel | None = None
    """That deployment instead of the one with most traffic."""
    metric: Annotated[str, Field(min_length=1, max_length=128)]
    """Metric name, looked up in the serving Model's spec.lineage.metrics."""
    from_: Annotated[StepOutputRef, Field(alias="from")]
    """The new model's metrics output."""
    higher_is_better: bool = True
    """Whether a larger value is better (default true)."""
    min_improvement: Annotated[float, Field(ge=0)] = 0
    """How much better the new value must be (default 0: at least as good)."""


class EvaluateStep(ApiModel):
    """A gate: the run goes on only if every threshold holds (and the comparison, if any)."""

    metrics: Annotated[list[MetricThreshold], Field(max_length=MAX_IO)] = Field(
        default_factory=list
    )
    """Metric thresholds."""
    compare_with: CompareWith | None = None
    """Comparison with the serving Model."""


class DeployStep(ApiModel):
    """Add a registered Model to an OnlineEndpoint as a canary or a mirror."""

    kube_validations = (
        Rule("has(self.canaryWeight) != has(self.mirrorPercent)", message=MSG_DEPLOY_ONE),
    )

    endpoint: ObjectName
    """OnlineEndpoint in the namespace."""
    model: StepRef
    """The registerModel step whose Model is deployed."""
    deployment: DnsLabel | None = None
    """Deployment name; <modelName>-v<version> (cut to a DNS label) when omitted."""
    canary_weight: Annotated[int, Field(ge=0, le=100)] | None = None
    """Traffic percent for the new deployment (others scaled down to sum 100)."""
    mirror_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    """Percent of traffic copied to the new deployment (responses discarded)."""
    runtime: Runtime | None = None
    """Serving runtime; auto when omitted."""

    @model_validator(mode="after")
    def _one_mode(self) -> DeployStep:
        if (self.canary_weight is None) == (self.mirror_percent is None):
            raise ValueError(MSG_DEPLOY_ONE)
        return self


class BatchStepInput(ApiModel):
    """What a batch step scores."""

    kube_validations = (Rule("has(self.uri) != has(self.fromStep)", message=MSG_BATCH_INPUT_ONE),)

    uri: Uri | None = None
    """Files outside the pipeline."""
    from_step: StepOutputRef | None = None
    """An artifact output of an upstream step."""
    format: InputFormat | None = None
    """auto, csv, parquet, jsonl or files; the BatchJob default (auto) when omitted."""

    @model_validator(mode="after")
    def _one_source(self) -> BatchStepInput:
        if (self.uri is None) == (self.from_step is None):
            raise ValueError(MSG_BATCH_INPUT_ONE)
        return self


class BatchStep(ApiModel):
    """Run a BatchJob `<run>-<step>` on a BatchEndpoint and wait for it."""

    endpoint: ObjectName
    """BatchEndpoint in the namespace."""
    deployment: DnsLabel | None = None
    """Deployment; the endpoint's default when omitted."""
    input: BatchStepInput
    """The data to score."""
