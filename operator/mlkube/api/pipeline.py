"""The `Pipeline` kind: typed parameters, a DAG of steps, schedules and triggers.

A Pipeline is a template; a `PipelineRun` (api/pipeline_run.py) runs a snapshot of it. The
step model is in api/pipeline_step.py and the whole-DAG checks in api/pipeline_refs.py; the
field names are fixed by docs/pipelines.md §1.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from mlkube.api.batch import ConcurrencyPolicy, Cron, ObjectName, TimeZone
from mlkube.api.common import (
    ApiModel,
    Conditions,
    Digest,
    DnsLabel,
    Message,
    ShortText,
    Text,
    Timestamp,
    Uri,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.duration import Duration
from mlkube.api.markers import ListMap, Rule
from mlkube.api.pipeline_refs import duplicates, find_cycle, reference_errors, template_errors
from mlkube.api.pipeline_step import Identifier, Step
from mlkube.contract import KIND_PIPELINE, PLURAL_PIPELINES

ParameterType = Literal["string", "integer", "number", "boolean"]
PARAMETER_TYPES: tuple[str, ...] = get_args(ParameterType)
MAX_PARAMETERS = 64
MAX_STEPS = 100  # with MAX_DEPENDS and MAX_IO 32: the cross-step CEL rules fit the cost budget
MAX_SCHEDULES = 16
MAX_TRIGGERS = 16
MAX_PARAMETER_VALUE = 4096
# The text forms a typed parameter value must have (CEL and pydantic use the same patterns).
VALUE_PATTERNS = {
    "integer": r"^[-+]?[0-9]+$",
    "number": r"^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$",
    "boolean": r"^(true|false)$",
}

MSG_DEPENDS_EXIST = "spec.steps[].dependsOn must name steps of this pipeline"
MSG_FROM_STEP_EXIST = "spec.steps[].inputs[].fromStep.step must name a step of this pipeline"
MSG_FROM_PARAMETER_EXIST = "spec.steps[].inputs[].fromParameter must name one of spec.parameters"
MSG_DEPLOY_MODEL = "spec.steps[].deploy.model.step must name a registerModel step"
MSG_SELF_DEPENDENCY = "a step cannot depend on itself"
MSG_TRIGGER_ONE = "a trigger needs exactly one of onDrift, onNewData"
MSG_DEFAULT_TYPE = "parameter default must be a value of the parameter's type"

ParameterValue = Annotated[str, Field(max_length=MAX_PARAMETER_VALUE)]
ParameterValues = Annotated[dict[str, ParameterValue], Field(max_length=MAX_PARAMETERS)]


def value_error(type_: str, value: str) -> str | None:
    """Why `value` is not a `type_` parameter value, or None when it is."""
    pattern = VALUE_PATTERNS.get(type_)
    if pattern is None or re.fullmatch(pattern, value):
        return None
    return f"{value!r} is not a {type_}"


class Parameter(ApiModel):
    """A typed pipeline parameter; values are text, checked against the type."""

    kube_validations = (
        Rule(
            "!has(self.default) || "
            + " && ".join(
                f"(self.type != '{t}' || self.default.matches('{p}'))"
                for t, p in VALUE_PATTERNS.items()
            ),
            message=MSG_DEFAULT_TYPE,
            field_path=".default",
        ),
    )

    name: Identifier
    """Parameter name: {{parameters.NAME}}, MLKUBE_PARAM_<NAME>, parameters.NAME in when."""
    type: ParameterType = "string"
    """string (default), integer, number or boolean (values are written as text)."""
    default: ParameterValue | None = None
    """Value when a run gives none; a parameter without default is required at run time."""
    description: ShortText | None = None
    """What the parameter means."""

    @model_validator(mode="after")
    def _typed_default(self) -> Parameter:
        problem = None if self.default is None else value_error(self.type, self.default)
        if problem:
            raise ValueError(f"parameter {self.name}: {MSG_DEFAULT_TYPE} ({problem})")
        return self


class PipelineSchedule(ApiModel):
    """A cron schedule that starts a run per scheduled time (never twice for one time)."""

    name: DnsLabel
    """Schedule name, unique in the pipeline; part of its runs' names."""
    cron: Cron
    """Five-field cron expression (minute hour day month weekday) or @hourly, @daily, ..."""
    time_zone: TimeZone = "UTC"
    """IANA time zone the cron expression is read in, e.g. Europe/Paris (default UTC)."""
    concurrency_policy: ConcurrencyPolicy = "Forbid"
    """While a run of this schedule is active: Allow another, Forbid (skip), Replace (cancel it)."""
    parameters: ParameterValues = Field(default_factory=dict)
    """Parameter values of the runs."""
    suspend: bool = False
    """Stop starting runs."""
    successful_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Succeeded runs of this schedule to keep."""
    failed_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 1
    """Failed or cancelled runs of this schedule to keep."""


class OnDrift(ApiModel):
    """Start a run when drift is detected on an endpoint (one run per drift episode)."""

    endpoint: ObjectName
    """OnlineEndpoint in the namespace."""
    deployment: DnsLabel | None = None
    """Only this deployment's drift; any deployment's when omitted."""
    cooldown: Duration = "1h"
    """No new run within this long of the last one (default 1h)."""
    max_runs_per_day: Annotated[int, Field(ge=1, le=100)] = 3
    """At most this many runs per day (default 3)."""


class OnNewData(ApiModel):
    """Start a run when the content under a URI prefix changes (compared by content digest)."""

    uri: Uri
    """The prefix to watch."""
    poll_interval: Duration = "5m"
    """How often it is listed (default 5m)."""


class PipelineTrigger(ApiModel):
    """An event that starts a run: drift on an endpoint or new data under a prefix."""

    kube_validations = (Rule("has(self.onDrift) != has(self.onNewData)", message=MSG_TRIGGER_ONE),)

    name: DnsLabel
    """Trigger name, unique in the pipeline; part of its runs' names."""
    parameters: ParameterValues = Field(default_factory=dict)
    """Parameter values of the runs."""
    on_drift: OnDrift | None = None
    """Fire on a drift episode."""
    on_new_data: OnNewData | None = None
    """Fire on changed data."""

    @model_validator(mode="after")
    def _one_event(self) -> PipelineTrigger:
        if (self.on_drift is None) == (self.on_new_data is None):
            raise ValueError(f"trigger {self.name}: {MSG_TRIGGER_ONE}")
        return self


def _all_steps(cond: str) -> str:
    return f"self.steps.all(s, {cond})"


class PipelineSpec(ApiModel):
    """Typed parameters, a DAG of steps (Jobs or built-ins), schedules and triggers."""

    kube_validations = (
        Rule(
            _all_steps(
                "!has(s.dependsOn) || s.dependsOn.all(d, self.steps.exists(t, t.name == d))"
            ),
            message=MSG_DEPENDS_EXIST,
            field_path=".steps",
        ),
        Rule(
            _all_steps(
                "!has(s.inputs) || s.inputs.all(i, !has(i.fromStep)"
                " || self.steps.exists(t, t.name == i.fromStep.step))"
            ),
            message=MSG_FROM_STEP_EXIST,
            field_path=".steps",
        ),
        Rule(
            _all_steps(
                "!has(s.inputs) || s.inputs.all(i, !has(i.fromParameter)"
                " || (has(self.parameters)"
                " && self.parameters.exists(p, p.name == i.fromParameter)))"
            ),
            message=MSG_FROM_PARAMETER_EXIST,
            field_path=".steps",
        ),
        Rule(
            _all_steps(
                "!has(s.deploy) || self.steps.exists(t, t.name == s.deploy.model.step"
                " && t.type == 'registerModel')"
            ),
            message=MSG_DEPLOY_MODEL,
            field_path=".steps",
        ),
    )

    description: Text | None = None
    """What the pipeline does."""
    parameters: Annotated[list[Parameter], ListMap("name"), Field(max_length=MAX_PARAMETERS)] = (
        Field(default_factory=list)
    )
    """Typed parameters; runs, schedules and triggers give values."""
    steps: Annotated[
        list[
            Annotated[
                Step,
                Rule(
                    "!has(self.dependsOn) || !(self.name in self.dependsOn)",
                    message=MSG_SELF_DEPENDENCY,
                ),
            ]
        ],
        ListMap("name"),
        Field(min_length=1, max_length=MAX_STEPS),
    ]
    """The steps (a DAG through dependsOn and references), at most 100."""
    fail_fast: bool = True
    """A failed step cancels running steps and skips the rest; false lets other branches go on."""
    parallelism: Annotated[int, Field(ge=1, le=32)] = 4
    """Container steps running at once per run (default 4)."""
    artifact_store: Uri | None = None
    """Where step outputs go; the operator setting MLKUBE_ARTIFACT_STORE when omitted."""
    schedules: Annotated[
        list[PipelineSchedule], ListMap("name"), Field(max_length=MAX_SCHEDULES)
    ] = Field(default_factory=list)
    """Cron schedules that start runs."""
    triggers: Annotated[list[PipelineTrigger], ListMap("name"), Field(max_length=MAX_TRIGGERS)] = (
        Field(default_factory=list)
    )
    """Events that start runs: drift on an endpoint, new data under a prefix."""

    @model_validator(mode="after")
    def _check(self) -> PipelineSpec:
        errors = self.problems()
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def problems(self) -> list[str]:
        """Every whole-pipeline problem (names, references, cycles, templates, parameters)."""
        errors = []
        for what, names in (
            ("parameter", [p.name for p in self.parameters]),
            ("step", [s.name for s in self.steps]),
            ("schedule", [s.name for s in self.schedules]),
            ("trigger", [t.name for t in self.triggers]),
        ):
            errors += [f"duplicate {what} name {n}" for n in duplicates(names)]
        params = [p.name for p in self.parameters]
        errors += reference_errors(self.steps, params)
        cycle = find_cycle(self.steps)
        if cycle:
            errors.append("dependency cycle: " + " -> ".join(cycle))
        errors += template_errors(self.steps, params)
        sources = [("schedule", s.name, s.parameters) for s in self.schedules] + [
            ("trigger", t.name, t.parameters) for t in self.triggers
        ]
        for what, name, values in sources:
            unknown = sorted(set(values) - set(params))
            if unknown:
                errors.append(f"{what} {name}: unknown parameters {', '.join(unknown)}")
        return errors

    def step(self, name: str) -> Step | None:
        """The step called `name`, if any."""
        return next((s for s in self.steps if s.name == name), None)


class RunCounts(ApiModel):
    """Runs of this pipeline by outcome (those still present)."""

    active: Annotated[int, Field(ge=0)] = 0
    """Pending or Running."""
    succeeded: Annotated[int, Field(ge=0)] = 0
    """Succeeded."""
    failed: Annotated[int, Field(ge=0)] = 0
    """Failed or Cancelled."""


class PipelineScheduleStatus(ApiModel):
    """What one schedule last did."""

    name: DnsLabel
    """Schedule name."""
    last_schedule_time: Timestamp | None = None
    """The scheduled time of the last run started."""
    next_schedule_time: Timestamp | None = None
    """The next time a run will start."""
    last_run: ObjectName | None = None
    """Name of the last run started."""
    message: Message | None = None
    """Why the last time was skipped, if it was."""


class PipelineTriggerStatus(ApiModel):
    """What one trigger last did (its debounce state)."""

    name: DnsLabel
    """Trigger name."""
    last_fired: Timestamp | None = None
    """When it last started a run."""
    last_run: ObjectName | None = None
    """Name of the last run it started."""
    fired_today: Annotated[int, Field(ge=0)] = 0
    """Runs started since dayStarted."""
    day_started: Timestamp | None = None
    """Start of the current day window for maxRunsPerDay."""
    last_digest: Digest | None = None
    """onNewData: the content digest last seen."""
    last_episode: Timestamp | None = None
    """onDrift: startedAt of the drift episode that last fired."""
    message: Message | None = None
    """Why it last refused to fire, if it did."""


class PipelineStatus(ApiModel):
    """Observed state of the pipeline, written by the operator only."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions = Field(default_factory=list)
    """Standard conditions: Ready (spec valid), Stalled (not), Reconciling."""
    last_run: ObjectName | None = None
    """Name of the last run started."""
    runs: RunCounts = Field(default_factory=RunCounts)
    """Runs by outcome."""
    schedules: Annotated[
        list[PipelineScheduleStatus], ListMap("name"), Field(max_length=MAX_SCHEDULES)
    ] = Field(default_factory=list)
    """Per-schedule bookkeeping."""
    triggers: Annotated[
        list[PipelineTriggerStatus], ListMap("name"), Field(max_length=MAX_TRIGGERS)
    ] = Field(default_factory=list)
    """Per-trigger bookkeeping."""
    message: Message | None = None
    """Human-readable summary."""


PIPELINE = KindDescriptor(
    kind=KIND_PIPELINE,
    plural=PLURAL_PIPELINES,
    singular="pipeline",
    short_names=("mlp",),
    spec_model=PipelineSpec,
    status_model=PipelineStatus,
    description=(
        "Pipeline is a DAG of steps (Jobs, or built-in registerModel, evaluate, deploy and batch"
        " steps) with typed parameters, content-addressed caching, schedules and drift or"
        " new-data triggers; a PipelineRun runs a snapshot of it."
    ),
    printer_columns=(
        PrinterColumn("Steps", ".spec.steps[*].name", description="Step names"),
        PrinterColumn("Last run", ".status.lastRun", description="Last run started"),
        PrinterColumn(
            "Ready",
            '.status.conditions[?(@.type=="Ready")].status',
            description="Ready",
            priority=1,
        ),
        AGE_COLUMN,
    ),
)
