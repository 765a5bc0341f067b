"""The `PipelineRun` kind: one execution of a snapshot of a Pipeline.

Like a BatchJob, a run is a record: its spec is immutable once created except `cancel`, which
can only be set; running part of it again is a new run with `resumeFrom` (and `rerunSteps`).
The status has one entry per step, with the cache decision and the outputs' digests, so a run
can be audited and resumed without reading anything else (docs/pipelines.md §1, §4).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from mlkube.api.batch import ObjectName
from mlkube.api.common import (
    MAX_URI_LENGTH,
    ApiModel,
    Conditions,
    Digest,
    Message,
    Timestamp,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.environment_status import EnvironmentRecord
from mlkube.api.markers import ListMap, ListSet, Rule, immutable
from mlkube.api.pipeline import MAX_PARAMETERS, MAX_STEPS, ParameterValue, ParameterValues
from mlkube.api.pipeline_step import MAX_IO, Identifier, OutputType, StepName
from mlkube.contract import KIND_PIPELINE_RUN, PLURAL_PIPELINE_RUNS

RunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
RUN_PHASES: tuple[str, ...] = get_args(RunPhase)
FINISHED_RUN_PHASES: tuple[str, ...] = ("Succeeded", "Failed", "Cancelled")
StepPhase = Literal["Pending", "Waiting", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"]
STEP_PHASES: tuple[str, ...] = get_args(StepPhase)
FINISHED_STEP_PHASES: tuple[str, ...] = ("Succeeded", "Failed", "Skipped", "Cancelled")
CachePolicy = Literal["Default", "ForceRerun"]
CACHE_POLICIES: tuple[str, ...] = get_args(CachePolicy)
TriggerType = Literal["manual", "schedule", "drift", "newData"]
TRIGGER_TYPES: tuple[str, ...] = get_args(TriggerType)
MAX_PRODUCED_MODELS = 64
MAX_STEP_MESSAGE = 1024
PROGRESS_PATTERN = r"^[0-9]+/[0-9]+$"

MSG_SPEC_IMMUTABLE = (
    "a PipelineRun's spec is immutable except cancel: start a new run (resumeFrom reuses this"
    " one's succeeded steps)"
)
MSG_CANCEL_FINAL = "spec.cancel cannot be undone: start a new run with resumeFrom instead"
MSG_RESUME_SELF = "spec.resumeFrom must name another PipelineRun"
MSG_RERUN_NEEDS_RESUME = "spec.rerunSteps needs spec.resumeFrom"
_OPTIONAL_FIELDS = ("parameters", "resumeFrom", "rerunSteps", "trigger")


class RunTrigger(ApiModel):
    """What started the run (set by the operator on runs it creates)."""

    type: TriggerType = "manual"
    """manual, schedule, drift or newData."""
    name: Annotated[str, Field(max_length=63)] | None = None
    """Schedule or trigger name."""
    detail: Annotated[str, Field(max_length=1024)] | None = None
    """E.g. the scheduled time, the drift episode, the new data digest."""


class PipelineRunSpec(ApiModel):
    """One run of a Pipeline: which one, with which parameter values, reusing what."""

    kube_validations = (
        Rule(
            " && ".join(f"has(self.{f}) == has(oldSelf.{f})" for f in _OPTIONAL_FIELDS),
            message=MSG_SPEC_IMMUTABLE,
        ),
        Rule(
            "!has(self.rerunSteps) || size(self.rerunSteps) == 0 || has(self.resumeFrom)",
            message=MSG_RERUN_NEEDS_RESUME,
            field_path=".rerunSteps",
        ),
    )

    pipeline: Annotated[ObjectName, immutable(MSG_SPEC_IMMUTABLE)]
    """Name of the Pipeline in the same namespace (its spec is snapshotted at start)."""
    parameters: Annotated[ParameterValues, immutable(MSG_SPEC_IMMUTABLE)] = Field(
        default_factory=dict
    )
    """Parameter values as text; checked against the Pipeline's types at start."""
    cache_policy: Annotated[CachePolicy, immutable(MSG_SPEC_IMMUTABLE)] = "Default"
    """Default (reuse cached steps) or ForceRerun (run every step, refresh the cache)."""
    resume_from: Annotated[ObjectName, immutable(MSG_SPEC_IMMUTABLE)] | None = None
    """A finished run of the same Pipeline whose Succeeded steps are reused (verified)."""
    rerun_steps: Annotated[
        list[StepName], ListSet(), Field(max_length=MAX_STEPS), immutable(MSG_SPEC_IMMUTABLE)
    ] = Field(default_factory=list)
    """With resumeFrom: steps to run again (and their dependents) although they succeeded."""
    cancel: Annotated[bool, Rule("self || !oldSelf", message=MSG_CANCEL_FINAL)] = False
    """Stop for good: running Jobs are deleted, phase Cancelled."""
    trigger: Annotated[RunTrigger, immutable(MSG_SPEC_IMMUTABLE)] | None = None
    """What started the run; manual when omitted."""

    @model_validator(mode="after")
    def _rerun_needs_resume(self) -> PipelineRunSpec:
        if self.rerun_steps and self.resume_from is None:
            raise ValueError(MSG_RERUN_NEEDS_RESUME)
        return self


class StepCache(ApiModel):
    """The cache decision for a step and why."""

    hit: bool = False
    """The outputs came from an earlier identical step."""
    key: Annotated[str, Field(max_length=71)] | None = None
    """The cache key (sha256:<hex>); absent when the step is uncacheable."""
    source_run: ObjectName | None = None
    """The run that produced the cached outputs."""
    reason: Annotated[str, Field(max_length=MAX_STEP_MESSAGE)] | None = None
    """Why: hit, no entry, expired, output missing or changed, disabled, ForceRerun, uncacheable."""


class StepOutputStatus(ApiModel):
    """One recorded output of a step."""

    name: Identifier
    """Output name."""
    type: OutputType = "artifact"
    """artifact, parameter or metrics."""
    uri: Annotated[str, Field(max_length=MAX_URI_LENGTH)] | None = None
    """Where an artifact (or metrics file) was uploaded."""
    digest: Digest | None = None
    """Content digest of the artifact."""
    value: ParameterValue | None = None
    """A parameter output's value (cut at 1 KiB)."""
    size: Annotated[int, Field(ge=0)] | None = None
    """Bytes uploaded."""


class StepStatus(ApiModel):
    """What one step did."""

    name: StepName
    """Step name."""
    phase: StepPhase = "Pending"
    """Pending, Waiting, Running, Succeeded (cache hits too), Failed, Skipped or Cancelled."""
    job: Annotated[str, Field(max_length=63)] | None = None
    """Job of the current (last) attempt."""
    attempts: Annotated[int, Field(ge=0)] = 0
    """Attempts started."""
    start_time: Timestamp | None = None
    """When the first attempt started."""
    completion_time: Timestamp | None = None
    """When the step finished."""
    next_attempt_time: Timestamp | None = None
    """When the next attempt starts (after a failure, with backoff)."""
    image_digest: Annotated[str, Field(max_length=512)] | None = None
    """The image actually run (the kubelet's imageID)."""
    environment: EnvironmentRecord | None = None
    """The environment (name, version, image by digest) the step ran on, if any."""
    cache: StepCache | None = None
    """The cache decision."""
    outputs: Annotated[list[StepOutputStatus], ListMap("name"), Field(max_length=MAX_IO)] = Field(
        default_factory=list
    )
    """The recorded outputs, with digests."""
    metrics: Annotated[dict[str, float], Field(max_length=64)] = Field(default_factory=dict)
    """Metrics the step reported."""
    message: Annotated[str, Field(max_length=MAX_STEP_MESSAGE)] | None = None
    """Why it failed or was skipped, or what it waits for."""


class PipelineRunStatus(ApiModel):
    """Observed state of the run, written by the operator only."""

    phase: RunPhase | None = None
    """Pending, Running, Succeeded, Failed or Cancelled."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions = Field(default_factory=list)
    """Standard conditions: Ready (succeeded), Reconciling (running), Stalled (failed/cancelled)."""
    start_time: Timestamp | None = None
    """When the run started."""
    completion_time: Timestamp | None = None
    """When it reached Succeeded, Failed or Cancelled."""
    pipeline_digest: Digest | None = None
    """sha256 of the canonical Pipeline spec snapshot (ConfigMap <run>-spec)."""
    parameters: Annotated[dict[str, ParameterValue], Field(max_length=MAX_PARAMETERS)] = Field(
        default_factory=dict
    )
    """The resolved parameter values (defaults filled in)."""
    progress: Annotated[str, Field(max_length=16, pattern=PROGRESS_PATTERN)] | None = None
    """Finished steps / steps, e.g. 3/5."""
    steps: Annotated[list[StepStatus], ListMap("name"), Field(max_length=MAX_STEPS)] = Field(
        default_factory=list
    )
    """Per-step state."""
    produced_models: Annotated[
        list[ObjectName], ListSet(), Field(max_length=MAX_PRODUCED_MODELS)
    ] = Field(default_factory=list)
    """Models created by registerModel steps."""
    message: Message | None = None
    """Human-readable summary."""


PIPELINE_RUN = KindDescriptor(
    kind=KIND_PIPELINE_RUN,
    plural=PLURAL_PIPELINE_RUNS,
    singular="pipelinerun",
    short_names=("mlpr",),
    spec_model=PipelineRunSpec,
    status_model=PipelineRunStatus,
    description=(
        "PipelineRun runs a snapshot of a Pipeline: one Job per container step in DAG order,"
        " cached by content digest, resumable, with per-step outputs, digests and cache"
        " decisions in its status."
    ),
    validations=(
        Rule(
            "!has(self.spec.resumeFrom) || self.spec.resumeFrom != self.metadata.name",
            message=MSG_RESUME_SELF,
            field_path=".spec.resumeFrom",
        ),
    ),
    printer_columns=(
        PrinterColumn("Pipeline", ".spec.pipeline", description="Pipeline"),
        PrinterColumn("Phase", ".status.phase", description="Lifecycle phase"),
        PrinterColumn("Progress", ".status.progress", description="Finished steps / steps"),
        PrinterColumn("Trigger", ".spec.trigger.type", description="What started it", priority=1),
        AGE_COLUMN,
    ),
)
