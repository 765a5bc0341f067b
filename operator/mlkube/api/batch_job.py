"""The `BatchJob` kind: one invocation of a BatchEndpoint deployment over an input.

A job is the record of one run, so its spec is immutable once created except `suspend` and
`cancel` (which can only be set); a different input is a new job, a rerun of the missing part is
a new job with `resumeFrom`. The status counts mini-batches and items the way Azure ML does
(items are files or rows) and stays small: the plan itself lives next to the output, the status
holds its digest and totals (docs/batch-endpoints.md).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from mlkube.api.batch import (
    MAX_CONCURRENCY_PER_INSTANCE,
    MAX_INSTANCES,
    BatchInput,
    BatchJobOutput,
    BatchOutputSettings,
    MiniBatchSizeValue,
    ObjectName,
    RetrySettings,
    check_mini_batch_size,
    parse_mini_batch_size,
)
from mlkube.api.common import (
    MAX_URI_LENGTH,
    ApiModel,
    Conditions,
    Digest,
    DnsLabel,
    Message,
    ShortText,
    Timestamp,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.environment_status import EnvironmentRecord
from mlkube.api.markers import Rule, immutable
from mlkube.contract import KIND_BATCH_JOB, PLURAL_BATCH_JOBS

BatchJobPhase = Literal[
    "Pending", "Planning", "Running", "Merging", "Succeeded", "Failed", "Cancelled", "Suspended"
]
BATCH_JOB_PHASES: tuple[str, ...] = get_args(BatchJobPhase)
MAX_LAST_ERRORS = 10
MAX_ERROR_MESSAGE = 1024

MSG_SPEC_IMMUTABLE = (
    "a BatchJob's spec is immutable except suspend and cancel: create a new job (resumeFrom"
    " reuses this one's finished parts)"
)
MSG_CANCEL_FINAL = "spec.cancel cannot be undone: create a new job with resumeFrom instead"
MSG_RESUME_SELF = "spec.resumeFrom must name another BatchJob"
MSG_ROWS_NEED_TABULAR = "miniBatchSize in rows needs a tabular input format (csv, parquet, jsonl)"
_OPTIONAL_FIELDS = ("deployment", "output", "overrides", "resumeFrom")


class BatchJobOverrides(ApiModel):
    """Deployment settings this job changes (Azure ML's per-invocation overrides)."""

    mini_batch_size: MiniBatchSizeValue | None = None
    """Files per mini-batch (N) or rows (Nrows) for this job."""
    instance_count: Annotated[int, Field(ge=1, le=MAX_INSTANCES)] | None = None
    """Pods that score at the same time."""
    max_concurrency_per_instance: (
        Annotated[int, Field(ge=1, le=MAX_CONCURRENCY_PER_INSTANCE)] | None
    ) = None
    """Scoring worker processes per pod."""
    error_threshold: Annotated[int, Field(ge=-1, le=2_147_483_647)] | None = None
    """Failed items tolerated; -1 tolerates any number."""
    retry_settings: RetrySettings | None = None
    """Retries and the per-mini-batch timeout."""
    output: BatchOutputSettings | None = None
    """Output action, merged file name and format."""

    _check_size = field_validator("mini_batch_size")(check_mini_batch_size)


class BatchJobSpec(ApiModel):
    """One run of a batch deployment over an input, written to an output folder."""

    kube_validations = (
        Rule(
            " && ".join(f"has(self.{f}) == has(oldSelf.{f})" for f in _OPTIONAL_FIELDS),
            message=MSG_SPEC_IMMUTABLE,
        ),
    )

    endpoint: Annotated[ObjectName, immutable(MSG_SPEC_IMMUTABLE)]
    """Name of the BatchEndpoint in the same namespace."""
    deployment: Annotated[DnsLabel, immutable(MSG_SPEC_IMMUTABLE)] | None = None
    """Deployment of the endpoint; its defaultDeployment when omitted."""
    input: Annotated[BatchInput, immutable(MSG_SPEC_IMMUTABLE)]
    """The data to score."""
    output: Annotated[BatchJobOutput, immutable(MSG_SPEC_IMMUTABLE)] | None = None
    """Output folder; chosen by the operator (and shown in status.outputUri) when omitted."""
    overrides: Annotated[BatchJobOverrides, immutable(MSG_SPEC_IMMUTABLE)] | None = None
    """Deployment settings changed for this job only."""
    resume_from: Annotated[ObjectName, immutable(MSG_SPEC_IMMUTABLE)] | None = None
    """A finished BatchJob whose plan and verified parts this job reuses; only the rest runs."""
    suspend: bool = False
    """Pause: running pods stop, finished parts stay; clearing it continues the job."""
    cancel: Annotated[bool, Rule("self || !oldSelf", message=MSG_CANCEL_FINAL)] = False
    """Stop for good (phase Cancelled); finished parts stay for a job with resumeFrom."""

    @model_validator(mode="after")
    def _rows_need_tabular(self) -> BatchJobSpec:
        # The deployment's own size is checked by the operator (it needs the endpoint).
        size = self.overrides.mini_batch_size if self.overrides else None
        rows = size is not None and parse_mini_batch_size(size).unit == "rows"
        if rows and self.input.format == "files":
            raise ValueError(MSG_ROWS_NEED_TABULAR)
        return self


class PlanSummary(ApiModel):
    """The recorded plan: its digest and totals (the plan itself is next to the output)."""

    digest: Digest
    """sha256 of the canonical plan file; workers refuse any other plan."""
    uri: Annotated[str, Field(max_length=MAX_URI_LENGTH)]
    """Where the plan file is."""
    mini_batches: Annotated[int, Field(ge=0)]
    """Mini-batches in the plan."""
    items: Annotated[int, Field(ge=0)]
    """Items (files or rows) in the plan."""
    items_estimated: bool = False
    """items is an estimate (csv/jsonl split by bytes); exact once every part has reported."""
    indexes: Annotated[int, Field(ge=0)]
    """Indexes (shards) of the Indexed Job."""


class MiniBatchCounts(ApiModel):
    """Mini-batches by outcome."""

    total: Annotated[int, Field(ge=0)] = 0
    """Mini-batches in the plan (or left to run, for a resumed job: see plan)."""
    succeeded: Annotated[int, Field(ge=0)] = 0
    """Mini-batches with a verified part."""
    failed: Annotated[int, Field(ge=0)] = 0
    """Mini-batches that failed after every retry."""
    retried: Annotated[int, Field(ge=0)] = 0
    """Extra attempts made (timeouts, exceptions, lost pods)."""


class ItemCounts(ApiModel):
    """Items (files or rows) by outcome; errorThreshold counts failed items."""

    total: Annotated[int, Field(ge=0)] = 0
    """Items in the input."""
    succeeded: Annotated[int, Field(ge=0)] = 0
    """Items with a prediction."""
    failed: Annotated[int, Field(ge=0)] = 0
    """Items that failed (their mini-batch failed, or the runtime rejected them)."""


class BatchError(ApiModel):
    """One recent failure and where it came from (the dead-letter folder has all of them)."""

    mini_batch: Annotated[int, Field(ge=0)]
    """Mini-batch number in the plan."""
    item: ShortText | None = None
    """The failed item (file path or row number) when one is known."""
    message: Annotated[str, Field(max_length=MAX_ERROR_MESSAGE)]
    """The error text, cut to 1 KiB (head and tail kept)."""
    attempt: Annotated[int, Field(ge=1)] = 1
    """Which attempt failed."""


class BatchJobStatus(ApiModel):
    """Observed state of the job, written by the operator only."""

    phase: BatchJobPhase | None = None
    """Pending, Planning, Running, Merging, Succeeded, Failed, Cancelled or Suspended."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions = Field(default_factory=list)
    """Standard conditions: Ready (succeeded), Reconciling (not finished), Stalled (failed)."""
    deployment: DnsLabel | None = None
    """The deployment that runs (the endpoint's default when spec names none)."""
    model: ObjectName | None = None
    """The Model the deployment scores with."""
    environment: EnvironmentRecord | None = None
    """The environment (name, version, image by digest) the scorer runs on, if any."""
    plan: PlanSummary | None = None
    """The recorded plan."""
    mini_batches: MiniBatchCounts = Field(default_factory=MiniBatchCounts)
    """Mini-batches by outcome."""
    items: ItemCounts = Field(default_factory=ItemCounts)
    """Items by outcome."""
    progress: Annotated[int, Field(ge=0, le=100)] = 0
    """Percent of mini-batches finished (succeeded or failed)."""
    start_time: Timestamp | None = None
    """When scoring started."""
    completion_time: Timestamp | None = None
    """When the job reached Succeeded, Failed or Cancelled."""
    output_uri: Annotated[str, Field(max_length=MAX_URI_LENGTH)] | None = None
    """The output folder (merged file, parts, manifest, dead letters)."""
    job: Annotated[str, Field(max_length=253)] | None = None
    """Name of the Indexed Job that scores."""
    last_errors: Annotated[list[BatchError], Field(max_length=MAX_LAST_ERRORS)] = Field(
        default_factory=list
    )
    """The most recent failures, newest last."""
    message: Message | None = None
    """Human-readable summary."""


BATCH_JOB = KindDescriptor(
    kind=KIND_BATCH_JOB,
    plural=PLURAL_BATCH_JOBS,
    singular="batchjob",
    short_names=("mlbj", "bj"),
    spec_model=BatchJobSpec,
    status_model=BatchJobStatus,
    description=(
        "BatchJob runs one BatchEndpoint deployment over an input as an Indexed Job, counting"
        " mini-batches and items, with resumable per-mini-batch outputs."
    ),
    validations=(
        Rule(
            "!has(self.spec.resumeFrom) || self.spec.resumeFrom != self.metadata.name",
            message=MSG_RESUME_SELF,
            field_path=".spec.resumeFrom",
        ),
    ),
    printer_columns=(
        PrinterColumn("Endpoint", ".spec.endpoint", description="BatchEndpoint"),
        PrinterColumn("Phase", ".status.phase", description="Lifecycle phase"),
        PrinterColumn("Progress", ".status.progress", "integer", "Percent of mini-batches done"),
        PrinterColumn("Failed", ".status.items.failed", "integer", "Failed items"),
        PrinterColumn("Output", ".status.outputUri", description="Output folder", priority=1),
        AGE_COLUMN,
    ),
)
