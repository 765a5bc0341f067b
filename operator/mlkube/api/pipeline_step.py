"""One step of a `Pipeline` (api/pipeline.py): a container, or a built-in step run by the operator.

A step's `type` selects exactly one block (`image`... for containers, `registerModel`,
`evaluate`, `deploy`, `batch` for the built-ins); CEL enforces it at admission and the
validators here enforce it for the CLI and the snapshot. Rules that need the whole step list
(references, cycles, templates) live on the spec (api/pipeline_refs.py). docs/pipelines.md §1.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from mlkube.api.batch import ObjectName
from mlkube.api.common import ApiModel, Digest, EnvVar, Resources, Uri
from mlkube.api.duration import Duration
from mlkube.api.environment import EnvironmentRef
from mlkube.api.markers import ListMap, ListSet, Rule
from mlkube.api.pipeline_blocks import IDENT_PATTERN as IDENT_PATTERN
from mlkube.api.pipeline_blocks import MAX_IO as MAX_IO
from mlkube.api.pipeline_blocks import MAX_STEP_NAME as MAX_STEP_NAME
from mlkube.api.pipeline_blocks import MSG_BATCH_INPUT_ONE as MSG_BATCH_INPUT_ONE
from mlkube.api.pipeline_blocks import MSG_DEPLOY_ONE as MSG_DEPLOY_ONE
from mlkube.api.pipeline_blocks import MSG_METRIC_BOUND as MSG_METRIC_BOUND
from mlkube.api.pipeline_blocks import MSG_METRIC_RANGE as MSG_METRIC_RANGE
from mlkube.api.pipeline_blocks import STEP_NAME_PATTERN as STEP_NAME_PATTERN
from mlkube.api.pipeline_blocks import BatchStep as BatchStep
from mlkube.api.pipeline_blocks import BatchStepInput as BatchStepInput
from mlkube.api.pipeline_blocks import CompareWith as CompareWith
from mlkube.api.pipeline_blocks import DeployStep as DeployStep
from mlkube.api.pipeline_blocks import EvaluateStep as EvaluateStep
from mlkube.api.pipeline_blocks import Identifier as Identifier
from mlkube.api.pipeline_blocks import MetricThreshold as MetricThreshold
from mlkube.api.pipeline_blocks import RegisterModelStep as RegisterModelStep
from mlkube.api.pipeline_blocks import StepName as StepName
from mlkube.api.pipeline_blocks import StepOutputRef as StepOutputRef
from mlkube.api.pipeline_blocks import StepRef as StepRef

StepType = Literal["container", "registerModel", "evaluate", "deploy", "batch"]
STEP_TYPES: tuple[str, ...] = get_args(StepType)
BUILTIN_STEP_TYPES: tuple[str, ...] = STEP_TYPES[1:]
OutputType = Literal["artifact", "parameter", "metrics"]
OUTPUT_TYPES: tuple[str, ...] = get_args(OutputType)

MAX_DEPENDS = 32
MAX_ARGS = 128
MAX_WHEN = 1024

MSG_CONTAINER_IMAGE = "a container step needs spec.steps[].image or spec.steps[].environment"
MSG_IMAGE_XOR_ENVIRONMENT = (
    "set spec.steps[].image or spec.steps[].environment, not both: the environment's image is used"
)
MSG_CONTAINER_ONLY = (
    "image, environment, command, args, env and resources are for container steps only"
    " (type container)"
)
MSG_BUILTIN_OUTPUTS = "only container steps declare outputs"
MSG_INPUT_ONE_SOURCE = "an input needs exactly one of fromParameter, fromStep, uri, model"
MSG_DIGEST_NEEDS_URI = "inputs[].digest is only for uri inputs"


def msg_block(kind: str) -> str:
    """The message for a step whose type and built-in block disagree."""
    return (
        f"a step of type {kind} needs the {kind} block, and only steps of type {kind} may have it"
    )


Arg = Annotated[str, Field(max_length=4096)]


class StepInput(ApiModel):
    """Something a step reads: a parameter, another step's output, a URI or a Model's artifact."""

    kube_validations = (
        Rule(
            "[has(self.fromParameter), has(self.fromStep), has(self.uri), has(self.model)]"
            ".filter(x, x).size() == 1",
            message=MSG_INPUT_ONE_SOURCE,
        ),
        Rule("!has(self.digest) || has(self.uri)", message=MSG_DIGEST_NEEDS_URI),
    )

    name: Identifier
    """Input name: {{inputs.NAME}} and MLKUBE_INPUT_<NAME> give its local path (or value)."""
    from_parameter: Identifier | None = None
    """A pipeline parameter (its value, in MLKUBE_INPUT_<NAME>)."""
    from_step: StepOutputRef | None = None
    """An output of an upstream step (artifact: a directory; parameter: its value)."""
    uri: Uri | None = None
    """Files outside the pipeline: s3://, gs://, https://, pvc://, file://."""
    digest: Digest | None = None
    """Expected content digest of uri (verified before the step starts; computed when omitted)."""
    model: ObjectName | None = None
    """A Model in the namespace: its verified artifact (uri and digest)."""

    @model_validator(mode="after")
    def _one_source(self) -> StepInput:
        sources = (self.from_parameter, self.from_step, self.uri, self.model)
        if sum(s is not None for s in sources) != 1:
            raise ValueError(f"input {self.name}: {MSG_INPUT_ONE_SOURCE}")
        if self.digest is not None and self.uri is None:
            raise ValueError(f"input {self.name}: {MSG_DIGEST_NEEDS_URI}")
        return self


class StepOutput(ApiModel):
    """Something a step produces."""

    name: Identifier
    """Output name: {{outputs.NAME}} and MLKUBE_OUTPUT_<NAME> give its local path."""
    type: OutputType = "artifact"
    """artifact (a directory), parameter (a text file, at most 1 KiB) or metrics (JSON numbers)."""


class Backoff(ApiModel):
    """Delay before attempt N+1: duration * factor^(N-1), at most maxDuration."""

    duration: Duration = "10s"
    """First delay (default 10s)."""
    factor: Annotated[float, Field(ge=1, le=10)] = 2
    """Growth per attempt (default 2)."""
    max_duration: Duration = "5m"
    """Longest delay (default 5m)."""


class Retry(ApiModel):
    """How often a failed step is run again (a new Job per attempt)."""

    limit: Annotated[int, Field(ge=0, le=10)] = 0
    """Attempts after the first (default 0)."""
    backoff: Backoff = Field(default_factory=Backoff, json_schema_extra={"default": {}})
    """Delay between attempts."""


class CacheSettings(ApiModel):
    """Content-addressed caching of the step's outputs (docs/pipelines.md §3)."""

    enabled: bool = True
    """Reuse the outputs of an identical earlier step (same key) instead of running."""
    version: Annotated[str, Field(max_length=63)] = ""
    """Part of the key: change it to invalidate old entries."""
    ignored_inputs: Annotated[list[Identifier], ListSet(), Field(max_length=MAX_IO)] = Field(
        default_factory=list
    )
    """Inputs left out of the key (e.g. a log level)."""
    max_age: Duration = "30d"
    """Entries older than this are not used (and are garbage-collected); default 30d."""


_CONTAINER_FIELDS = ("image", "environment", "command", "args", "env", "resources")
_BLOCKS = {
    "registerModel": "register_model",
    "evaluate": "evaluate",
    "deploy": "deploy",
    "batch": "batch",
}


class Step(ApiModel):
    """A node of the DAG: a container run as a Job, or a built-in step run by the operator."""

    kube_validations = (
        Rule(
            "self.type != 'container' || has(self.image) || has(self.environment)",
            message=MSG_CONTAINER_IMAGE,
            field_path=".image",
        ),
        Rule(
            "!(has(self.image) && has(self.environment))",
            message=MSG_IMAGE_XOR_ENVIRONMENT,
            field_path=".environment",
        ),
        Rule(
            "self.type == 'container' || ("
            + " && ".join(f"!has(self.{f})" for f in _CONTAINER_FIELDS)
            + ")",
            message=MSG_CONTAINER_ONLY,
        ),
        Rule(
            "self.type == 'container' || !has(self.outputs) || size(self.outputs) == 0",
            message=MSG_BUILTIN_OUTPUTS,
            field_path=".outputs",
        ),
        *(Rule(f"has(self.{b}) == (self.type == '{b}')", message=msg_block(b)) for b in _BLOCKS),
    )

    name: StepName
    """Step name: a DNS label of at most 40 characters, unique in the pipeline."""
    type: StepType = "container"
    """container (default), registerModel, evaluate, deploy or batch."""
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Container image (pin it by @sha256: digest, or list it in MLKUBE_IMAGE_DIGESTS, to cache)."""
    environment: EnvironmentRef | None = None
    """An Environment (name:version or name@latest) whose image runs the step, instead of image."""
    command: Annotated[list[Arg], Field(max_length=MAX_ARGS)] = Field(default_factory=list)
    """Entrypoint; the image's when empty."""
    args: Annotated[list[Arg], Field(max_length=MAX_ARGS)] = Field(default_factory=list)
    """Arguments; {{parameters.X}}, {{inputs.X}}, {{outputs.X}}, {{run.name}}, {{run.uid}}."""
    env: Annotated[list[EnvVar], ListMap("name"), Field(max_length=64)] = Field(
        default_factory=list
    )
    """Environment variables (values take the same placeholders as args)."""
    resources: Resources | None = None
    """CPU and memory of the step container."""
    depends_on: Annotated[list[StepName], ListSet(), Field(max_length=MAX_DEPENDS)] = Field(
        default_factory=list
    )
    """Steps that must finish first (steps referenced by inputs and blocks are added)."""
    inputs: Annotated[list[StepInput], ListMap("name"), Field(max_length=MAX_IO)] = Field(
        default_factory=list
    )
    """What the step reads, materialised and verified by digest before it starts."""
    outputs: Annotated[list[StepOutput], ListMap("name"), Field(max_length=MAX_IO)] = Field(
        default_factory=list
    )
    """What the step produces (container steps)."""
    retry: Retry = Field(default_factory=Retry, json_schema_extra={"default": {}})
    """Attempts after a failure, with backoff."""
    cache: CacheSettings = Field(default_factory=CacheSettings, json_schema_extra={"default": {}})
    """Content-addressed caching."""
    when: Annotated[str, Field(min_length=1, max_length=MAX_WHEN)] | None = None
    """CEL condition over `parameters` and upstream `steps`; false skips the step."""
    continue_on_failure: bool = False
    """A failure of this step does not fail the run (its dependents are skipped)."""
    timeout: Duration | None = None
    """Longest a run of the step may take (the Job's activeDeadlineSeconds)."""
    register_model: RegisterModelStep | None = None
    """type registerModel: the Model to create."""
    evaluate: EvaluateStep | None = None
    """type evaluate: the gate."""
    deploy: DeployStep | None = None
    """type deploy: where the Model goes."""
    batch: BatchStep | None = None
    """type batch: the BatchJob to run."""

    @model_validator(mode="after")
    def _type_and_block(self) -> Step:
        prefix = f"step {self.name}: "
        if self.type == "container":
            if self.image is None and self.environment is None:
                raise ValueError(prefix + MSG_CONTAINER_IMAGE)
            if self.image is not None and self.environment is not None:
                raise ValueError(prefix + MSG_IMAGE_XOR_ENVIRONMENT)
        elif any(getattr(self, f) for f in _CONTAINER_FIELDS):
            raise ValueError(prefix + MSG_CONTAINER_ONLY)
        elif self.outputs:
            raise ValueError(prefix + MSG_BUILTIN_OUTPUTS)
        for wire, attr in _BLOCKS.items():
            if (getattr(self, attr) is not None) != (self.type == wire):
                raise ValueError(prefix + msg_block(wire))
        return self

    def output(self, name: str) -> StepOutput | None:
        """The declared output called `name`, if any."""
        return next((o for o in self.outputs if o.name == name), None)

    def references(self) -> list[tuple[str, StepOutputRef | StepRef]]:
        """Every (field path, reference to another step) in inputs and built-in blocks."""
        refs: list[tuple[str, StepOutputRef | StepRef]] = [
            (f"inputs.{i.name}.fromStep", i.from_step) for i in self.inputs if i.from_step
        ]
        if self.register_model:
            refs.append(("registerModel.artifact", self.register_model.artifact))
            refs += [("registerModel.metricsFrom", r) for r in self.register_model.metrics_from]
            if self.register_model.baseline:
                refs.append(("registerModel.baseline", self.register_model.baseline))
        if self.evaluate:
            refs += [(f"evaluate.metrics.{m.name}.from", m.from_) for m in self.evaluate.metrics]
            if self.evaluate.compare_with:
                refs.append(("evaluate.compareWith.from", self.evaluate.compare_with.from_))
        if self.deploy:
            refs.append(("deploy.model", self.deploy.model))
        if self.batch and self.batch.input.from_step:
            refs.append(("batch.input.fromStep", self.batch.input.from_step))
        return refs

    def dependencies(self) -> list[str]:
        """dependsOn plus every step referenced by inputs and blocks, sorted, once each."""
        return sorted({*self.depends_on, *(ref.step for _, ref in self.references())})
