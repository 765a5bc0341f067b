"""The `BatchEndpoint` kind: Azure ML batch deployments of Models, and their schedules.

A batch endpoint holds no running pods; it is the template a `BatchJob` (api/batch_job.py)
runs. Defaults are Azure ML's batch-deployment defaults so an Azure user's numbers mean the
same here (docs/batch-endpoints.md). The mini-batch size is `N` files or `Nrows` rows; it is
parsed once, by `parse_mini_batch_size`, for the planner and the CLI.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, JsonValue, field_validator, model_validator

from mlkube.api.batch_size import (  # re-exported: callers know them from here
    MAX_FILES_PER_MINI_BATCH as MAX_FILES_PER_MINI_BATCH,
)
from mlkube.api.batch_size import MAX_ROWS_PER_MINI_BATCH as MAX_ROWS_PER_MINI_BATCH
from mlkube.api.batch_size import MSG_MINI_BATCH_INT as MSG_MINI_BATCH_INT
from mlkube.api.batch_size import MSG_MINI_BATCH_ROWS as MSG_MINI_BATCH_ROWS
from mlkube.api.batch_size import MiniBatchSize as MiniBatchSize
from mlkube.api.batch_size import parse_mini_batch_size as parse_mini_batch_size
from mlkube.api.common import (
    DNS_LABEL_PATTERN,
    MAX_NAME_LENGTH,
    ApiModel,
    Conditions,
    DnsLabel,
    EnvVar,
    Message,
    Resources,
    Timestamp,
    Uri,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.environment import EnvironmentRef
from mlkube.api.markers import ListMap, Rule
from mlkube.api.model import RelativePath
from mlkube.contract import KIND_BATCH_ENDPOINT, PLURAL_BATCH_ENDPOINTS

MAX_DEPLOYMENTS = 16
MAX_SCHEDULES = 16
MAX_INSTANCES = 1000
MAX_CONCURRENCY_PER_INSTANCE = 64
MINI_BATCH_SIZE_PATTERN = r"^[1-9][0-9]{0,8}(rows)?$"
FILE_NAME_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$"
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
_MONTH_NAMES = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAY_NAMES = "SUN|MON|TUE|WED|THU|FRI|SAT"


def _cron_field(value: str) -> str:
    """One cron field: `*`, `?`, values, ranges and steps, comma-separated (classes, not
    backslashes, so the text is also a valid CEL string)."""
    item = f"([*]|[?]|({value})(-({value}))?)(/[1-9][0-9]*)?"
    return f"{item}(,{item})*"


# The five fields with their value ranges (reconcile/cron.py parses the same language); the
# CEL rule built from it refuses `60 * * * *` at admission. Reversed ranges and days that
# never occur (Feb 30) are left to the operator (Degraded, InvalidSchedule).
STRICT_CRON_PATTERN = (
    "(?i)^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + " +".join(
        _cron_field(v)
        for v in (
            "[0-5]?[0-9]",
            "[01]?[0-9]|2[0-3]",
            "0?[1-9]|[12][0-9]|3[01]",
            f"0?[1-9]|1[0-2]|{_MONTH_NAMES}",
            f"0?[0-7]|{_DAY_NAMES}",
        )
    )
    + ")$"
)
MSG_CRON = (
    "cron must be five fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or"
    " JAN-DEC, day of week 0-7 or SUN-SAT; each *, ?, a value, a range a-b, a step /n, or a"
    " comma list of them) or @yearly, @monthly, @weekly, @daily, @hourly"
)
TIME_ZONE_PATTERN = r"^[A-Za-z][-+A-Za-z0-9_]*(/[-+A-Za-z0-9_]+)*$"
# Schedule uri templates (reconcile/batch_schedule_jobs.py renders them): {scheduledTime},
# {scheduledTime:<strftime>} with locale-free directives, {{ and }} for literal braces. Braces
# are written as classes so the same text is a valid CEL string (no backslash escapes).
SCHEDULE_PLACEHOLDER = "scheduledTime"
TEMPLATE_DIRECTIVES = "aAbBdHIjmMpSUwWyYGuVzZ%"
URI_TEMPLATE_PATTERN = (
    r"^([^{}]|[{][{]|[}][}]|[{]" + SCHEDULE_PLACEHOLDER
    + r"(:([^{}%]|%[" + TEMPLATE_DIRECTIVES + r"])+)?[}])*$"
)  # fmt: skip
MSG_URI_TEMPLATE = (
    "uri placeholders are {scheduledTime} or {scheduledTime:<strftime>} (e.g."
    " {scheduledTime:%Y/%m/%d}; directives %" + ", %".join(TEMPLATE_DIRECTIVES[:-1])
    + " and %%); write {{ and }} for literal braces"
)  # fmt: skip


def check_cron(value: str) -> str:
    """The CEL rule's check, for the CLI and the operator (same pattern, same message)."""
    if not re.fullmatch(STRICT_CRON_PATTERN, value):
        raise ValueError(f"{value!r}: {MSG_CRON}")
    return value


# Shared by every kind with schedules (BatchEndpoint, Pipeline).
Cron = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=CRON_PATTERN),
    Rule(f"self.matches('{STRICT_CRON_PATTERN}')", message=MSG_CRON),
    AfterValidator(check_cron),
]
TimeZone = Annotated[str, Field(max_length=64, pattern=TIME_ZONE_PATTERN)]

OutputAction = Literal["appendRow", "summaryOnly"]
OutputFormat = Literal["csv", "jsonl", "parquet"]
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
LoggingLevel = Literal["debug", "info", "warning", "error"]
ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
InputType = Literal["file", "folder"]
InputFormat = Literal["auto", "csv", "parquet", "jsonl", "files"]
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)

MSG_DEFAULT_DEPLOYMENT = "spec.defaultDeployment must name one of spec.deployments"
MSG_SCHEDULE_DEPLOYMENT = "spec.schedules[].deployment must name one of spec.deployments"
MSG_SCHEDULE_NEEDS_DEPLOYMENT = (
    "a schedule without deployment needs spec.defaultDeployment (or a single deployment)"
)
MSG_DUPLICATE_DEPLOYMENT = "spec.deployments names must be unique"
MSG_DUPLICATE_SCHEDULE = "spec.schedules names must be unique"

_EMPTY: dict[str, JsonValue] = {"default": {}}
ObjectName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DNS_LABEL_PATTERN)
]
MiniBatchSizeValue = Annotated[
    Annotated[int, Field(strict=True, ge=1, le=MAX_FILES_PER_MINI_BATCH)]
    | Annotated[str, Field(max_length=13, pattern=MINI_BATCH_SIZE_PATTERN)],
    Rule(
        f"type(self) != int || (self >= 1 && self <= {MAX_FILES_PER_MINI_BATCH})",
        message=MSG_MINI_BATCH_INT,
    ),
]
"""`N` (files per mini-batch, an integer or its text) or `Nrows` (rows, tabular inputs only)."""


def check_mini_batch_size(value: int | str | None) -> int | str | None:
    if value is not None:
        parse_mini_batch_size(value)
    return value


class RetrySettings(ApiModel):
    """How often and how long a mini-batch may run (Azure ML retry_settings)."""

    max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    """Attempts after the first before a mini-batch counts as failed (Azure default 3)."""
    timeout_seconds: Annotated[int, Field(ge=1, le=86400)] = 30
    """Seconds one run(mini_batch) call may take before it is killed and retried (default 30)."""


class BatchOutputSettings(ApiModel):
    """What a job writes besides its per-mini-batch parts."""

    action: OutputAction = "appendRow"
    """appendRow merges every prediction into fileName; summaryOnly writes only the manifest."""
    # The first character is alphanumeric, so the job's own `_mlkube/` folder is never hit.
    file_name: Annotated[str, Field(min_length=1, max_length=255, pattern=FILE_NAME_PATTERN)] = (
        "predictions.csv"
    )
    """Name of the merged file in the job's output folder (default predictions.csv)."""
    format: OutputFormat = "csv"
    """Format of the parts and the merged file: csv, jsonl or parquet."""


class BatchEntrypoint(ApiModel):
    """An Azure ML batch scoring script in the artifact: init() once, run(mini_batch) per batch."""

    path: RelativePath
    """Script path relative to the artifact root, e.g. batch_score.py."""
    init_function: Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = (
        "init"
    )
    """Function called once per worker process."""
    run_function: Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "run"
    """Function called per mini-batch with file paths or a DataFrame; returns one item per input."""

    @field_validator("path")
    @classmethod
    def _inside_artifact(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("path must stay inside the artifact (no '..' segments)")
        return value


class BatchDeployment(ApiModel):
    """One way to score: a Model, a scoring script and Azure ML's parallelism settings."""

    name: DnsLabel
    """Deployment name, unique in the endpoint."""
    model: ObjectName
    """Name of a Model object in the same namespace."""
    environment: EnvironmentRef | None = None
    """Environment (name:version or name@latest) whose image runs the scorer."""
    entrypoint: BatchEntrypoint | None = None
    """Batch scoring script; the built-in runtime of the Model's framework when omitted."""
    mini_batch_size: MiniBatchSizeValue = 10
    """Files per mini-batch (N), or rows for csv/parquet/jsonl inputs (Nrows); default 10."""
    instance_count: Annotated[int, Field(ge=1, le=MAX_INSTANCES)] = 1
    """Pods that score at the same time (default 1)."""
    max_concurrency_per_instance: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY_PER_INSTANCE)] = 1
    """Scoring worker processes per pod (default 1)."""
    error_threshold: Annotated[int, Field(ge=-1, le=2_147_483_647)] = -1
    """Failed items (files or rows) tolerated before the job fails; -1 tolerates any number."""
    # `default: {}` in the CRD makes the API server fill the nested Azure defaults too.
    retry_settings: RetrySettings = Field(default_factory=RetrySettings, json_schema_extra=_EMPTY)
    """Retries and the per-mini-batch timeout."""
    output: BatchOutputSettings = Field(
        default_factory=BatchOutputSettings, json_schema_extra=_EMPTY
    )
    """Output action, merged file name and format."""
    resources: Resources | None = None
    """CPU and memory of each scoring pod."""
    env: Annotated[list[EnvVar], ListMap("name"), Field(max_length=64)] = Field(
        default_factory=list
    )
    """Extra environment variables for the scorer (e.g. for scoring scripts)."""
    logging_level: LoggingLevel = "info"
    """Scorer log level: debug, info, warning or error."""

    _check_size = field_validator("mini_batch_size")(check_mini_batch_size)


class BatchInput(ApiModel):
    """The data a job scores."""

    uri: Uri
    """A file or a folder (every file below it, sorted): s3://, gs://, https://, pvc://, file://."""
    type: InputType = "folder"
    """file (one file) or folder."""
    format: InputFormat = "auto"
    """csv, parquet, jsonl, files (opaque files) or auto (by file extension)."""


class BatchJobOutput(ApiModel):
    """Where a job writes."""

    uri: Uri
    """Output folder: parts, manifest, dead letters and the merged file go below it."""


class BatchSchedule(ApiModel):
    """A cron schedule that creates a BatchJob per scheduled time (never twice for one time)."""

    kube_validations = (
        Rule(
            f"self.input.uri.matches('{URI_TEMPLATE_PATTERN}')",
            message=MSG_URI_TEMPLATE,
            field_path=".input.uri",
        ),
        Rule(
            f"!has(self.output) || self.output.uri.matches('{URI_TEMPLATE_PATTERN}')",
            message=MSG_URI_TEMPLATE,
            field_path=".output.uri",
        ),
    )

    name: DnsLabel
    """Schedule name, unique in the endpoint; part of the jobs' names."""
    cron: Cron
    """Five-field cron expression (minute hour day month weekday) or @hourly, @daily, ..."""
    time_zone: TimeZone = "UTC"
    """IANA time zone the cron expression is read in, e.g. Europe/Paris (default UTC)."""
    input: BatchInput
    """Input of each job; {scheduledTime} or {scheduledTime:%Y/%m/%d} in the uri is replaced."""
    output: BatchJobOutput | None = None
    """Output of each job (the same placeholders apply); one folder per job when omitted."""
    deployment: DnsLabel | None = None
    """Deployment the jobs use; the endpoint's defaultDeployment when omitted."""
    concurrency_policy: ConcurrencyPolicy = "Forbid"
    """While a job of this schedule runs: Allow another, Forbid (skip the time), Replace it."""
    starting_deadline_seconds: Annotated[int, Field(ge=0, le=604800)] = 3600
    """How late a missed time may still fire; older missed times are skipped and counted."""
    successful_jobs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Succeeded jobs of this schedule to keep (their outputs are always kept)."""
    failed_jobs_history_limit: Annotated[int, Field(ge=0, le=100)] = 1
    """Failed or cancelled jobs of this schedule to keep."""
    suspend: bool = False
    """Stop creating jobs (times passed while suspended count as missed)."""

    @model_validator(mode="after")
    def _templates(self) -> BatchSchedule:
        for uri in (self.input.uri, self.output.uri if self.output else ""):
            if not re.fullmatch(URI_TEMPLATE_PATTERN, uri):
                raise ValueError(f"{uri!r}: {MSG_URI_TEMPLATE}")
        return self


def _names_deployment(name: str) -> str:
    return f"has(self.deployments) && self.deployments.exists(d, d.name == {name})"


class BatchEndpointSpec(ApiModel):
    """Batch deployments of Models that BatchJobs run over large inputs, on demand or on cron."""

    kube_validations = (
        Rule(
            f"!has(self.defaultDeployment) || ({_names_deployment('self.defaultDeployment')})",
            message=MSG_DEFAULT_DEPLOYMENT,
            field_path=".defaultDeployment",
        ),
        Rule(
            "!has(self.schedules) || self.schedules.all(s, !has(s.deployment)"
            f" || ({_names_deployment('s.deployment')}))",
            message=MSG_SCHEDULE_DEPLOYMENT,
            field_path=".schedules",
        ),
        Rule(
            "!has(self.schedules) || has(self.defaultDeployment)"
            " || (has(self.deployments) && size(self.deployments) == 1)"
            " || self.schedules.all(s, has(s.deployment))",
            message=MSG_SCHEDULE_NEEDS_DEPLOYMENT,
            field_path=".schedules",
        ),
    )

    deployments: Annotated[
        list[BatchDeployment], ListMap("name"), Field(max_length=MAX_DEPLOYMENTS)
    ] = Field(default_factory=list)
    """Batch deployments (names are unique)."""
    default_deployment: DnsLabel | None = None
    """Deployment a job uses when it names none; must be one of deployments."""
    schedules: Annotated[list[BatchSchedule], ListMap("name"), Field(max_length=MAX_SCHEDULES)] = (
        Field(default_factory=list)
    )
    """Cron schedules that create BatchJobs."""

    @model_validator(mode="after")
    def _check(self) -> BatchEndpointSpec:
        names = [d.name for d in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(MSG_DUPLICATE_DEPLOYMENT)
        if len({s.name for s in self.schedules}) != len(self.schedules):
            raise ValueError(MSG_DUPLICATE_SCHEDULE)
        if self.default_deployment is not None and self.default_deployment not in names:
            raise ValueError(MSG_DEFAULT_DEPLOYMENT)
        for schedule in self.schedules:
            if schedule.deployment is not None and schedule.deployment not in names:
                raise ValueError(MSG_SCHEDULE_DEPLOYMENT)
            if schedule.deployment is None and self.resolved_default() is None:
                raise ValueError(MSG_SCHEDULE_NEEDS_DEPLOYMENT)
        return self

    def resolved_default(self) -> str | None:
        """defaultDeployment, or the only deployment when there is one."""
        if self.default_deployment is not None:
            return self.default_deployment
        return self.deployments[0].name if len(self.deployments) == 1 else None


class ScheduleStatus(ApiModel):
    """What one schedule last did."""

    name: DnsLabel
    """Schedule name."""
    last_schedule_time: Timestamp | None = None
    """The scheduled time of the last job created (a cache: job names are the guard)."""
    last_job: ObjectName | None = None
    """Name of the last BatchJob created."""
    next_schedule_time: Timestamp | None = None
    """The next time a job will be created."""
    missed: Annotated[int, Field(ge=0)] = 0
    """Scheduled times skipped (operator down past the deadline, Forbid, suspended)."""


class BatchEndpointStatus(ApiModel):
    """Observed state of the endpoint, written by the operator only."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions = Field(default_factory=list)
    """Standard conditions: Ready (every deployment's Model is Ready), Reconciling, Stalled."""
    default_deployment: DnsLabel | None = None
    """The deployment jobs use when they name none."""
    schedules: Annotated[list[ScheduleStatus], ListMap("name"), Field(max_length=MAX_SCHEDULES)] = (
        Field(default_factory=list)
    )
    """Per-schedule bookkeeping."""
    message: Message | None = None
    """Human-readable summary."""


BATCH_ENDPOINT = KindDescriptor(
    kind=KIND_BATCH_ENDPOINT,
    plural=PLURAL_BATCH_ENDPOINTS,
    singular="batchendpoint",
    short_names=("mlbe", "be"),
    spec_model=BatchEndpointSpec,
    status_model=BatchEndpointStatus,
    description=(
        "BatchEndpoint holds batch deployments of Models (Azure ML semantics: mini-batches,"
        " instances, retries, error threshold, appendRow output) that BatchJobs run, on demand"
        " or on cron schedules."
    ),
    printer_columns=(
        PrinterColumn("Default", ".spec.defaultDeployment", description="Default deployment"),
        PrinterColumn(
            "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready"
        ),
        AGE_COLUMN,
    ),
)
