"""The `Pipeline` kind: typed parameters, a DAG of steps, schedules and triggers.

A Pipeline is a template; a `PipelineRun` (api/pipeline_run.py) runs a snapshot of it. The
step model is in api/pipeline_step.py and the whole-DAG checks in api/pipeline_refs.py; the
field names are fixed by docs/pipelines.md §1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, model_validator

from mlkube.api.batch import ObjectName
from mlkube.api.common import ApiModel, Conditions, Message, Text, Uri
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.markers import ListMap, Rule
from mlkube.api.pipeline_params import MAX_PARAMETER_VALUE as MAX_PARAMETER_VALUE
from mlkube.api.pipeline_params import MAX_PARAMETERS as MAX_PARAMETERS
from mlkube.api.pipeline_params import MSG_DEFAULT_TYPE as MSG_DEFAULT_TYPE
from mlkube.api.pipeline_params import PARAMETER_TYPES as PARAMETER_TYPES
from mlkube.api.pipeline_params import VALUE_PATTERNS as VALUE_PATTERNS
from mlkube.api.pipeline_params import Parameter as Parameter
from mlkube.api.pipeline_params import ParameterType as ParameterType
from mlkube.api.pipeline_params import ParameterValue as ParameterValue
from mlkube.api.pipeline_params import ParameterValues as ParameterValues
from mlkube.api.pipeline_params import value_error as value_error
from mlkube.api.pipeline_refs import duplicates, find_cycle, reference_errors, template_errors
from mlkube.api.pipeline_step import OUTPUT_TYPES as OUTPUT_TYPES
from mlkube.api.pipeline_step import STEP_TYPES as STEP_TYPES
from mlkube.api.pipeline_step import OutputType as OutputType  # re-exported with the kind
from mlkube.api.pipeline_step import Step as Step
from mlkube.api.pipeline_step import StepType as StepType
from mlkube.api.pipeline_triggers import MSG_TRIGGER_ONE as MSG_TRIGGER_ONE
from mlkube.api.pipeline_triggers import OnDrift as OnDrift
from mlkube.api.pipeline_triggers import OnNewData as OnNewData
from mlkube.api.pipeline_triggers import PipelineSchedule as PipelineSchedule
from mlkube.api.pipeline_triggers import PipelineScheduleStatus as PipelineScheduleStatus
from mlkube.api.pipeline_triggers import PipelineTrigger as PipelineTrigger
from mlkube.api.pipeline_triggers import PipelineTriggerStatus as PipelineTriggerStatus
from mlkube.contract import KIND_PIPELINE, PLURAL_PIPELINES

MAX_STEPS = 100  # with MAX_DEPENDS and MAX_IO 32: the cross-step CEL rules fit the cost budget
MAX_SCHEDULES = 16
MAX_TRIGGERS = 16
MSG_DEPENDS_EXIST = "spec.steps[].dependsOn must name steps of this pipeline"
MSG_FROM_STEP_EXIST = "spec.steps[].inputs[].fromStep.step must name a step of this pipeline"
MSG_FROM_PARAMETER_EXIST = "spec.steps[].inputs[].fromParameter must name one of spec.parameters"
MSG_DEPLOY_MODEL = "spec.steps[].deploy.model.step must name a registerModel step"
MSG_BLOCK_STEP_EXIST = (
    "the step references of registerModel (artifact, metricsFrom, baseline), evaluate"
    " (metrics[].from, compareWith.from) and batch (input.fromStep) must name steps of this"
    " pipeline"
)
MSG_SELF_DEPENDENCY = "a step cannot depend on itself"


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
        # Split in three: one rule over every block would exceed the per-rule cost budget.
        Rule(
            _all_steps(
                "!has(s.registerModel) || (self.steps.exists(t, t.name =="
                " s.registerModel.artifact.step) && (!has(s.registerModel.metricsFrom)"
                " || s.registerModel.metricsFrom.all(r, self.steps.exists(t, t.name == r.step))))"
            ),
            message=MSG_BLOCK_STEP_EXIST,
            field_path=".steps",
        ),
        Rule(
            _all_steps(
                "!has(s.registerModel) || !has(s.registerModel.baseline)"
                " || self.steps.exists(t, t.name == s.registerModel.baseline.step)"
            ),
            message=MSG_BLOCK_STEP_EXIST,
            field_path=".steps",
        ),
        Rule(
            _all_steps(
                "!has(s.evaluate) || ((!has(s.evaluate.metrics) || s.evaluate.metrics.all(m,"
                " self.steps.exists(t, t.name == m.from.step))) && (!has(s.evaluate.compareWith)"
                " || self.steps.exists(t, t.name == s.evaluate.compareWith.from.step)))"
            ),
            message=MSG_BLOCK_STEP_EXIST,
            field_path=".steps",
        ),
        Rule(
            _all_steps(
                "!has(s.batch) || !has(s.batch.input.fromStep)"
                " || self.steps.exists(t, t.name == s.batch.input.fromStep.step)"
            ),
            message=MSG_BLOCK_STEP_EXIST,
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

    def resolve_parameters(self, values: Mapping[str, str]) -> dict[str, str]:
        """Run values over defaults, every one checked against its type; ValueError naming
        every unknown, missing or mistyped parameter (a run's start, the CLI's -p k=v)."""
        declared = {p.name: p for p in self.parameters}
        errors = [f"unknown parameter {n}" for n in sorted(set(values) - set(declared))]
        resolved: dict[str, str] = {}
        for param in self.parameters:
            value = values.get(param.name, param.default)
            if value is None:
                errors.append(f"parameter {param.name} is required (it has no default)")
                continue
            problem = value_error(param.type, value)
            if problem:
                errors.append(f"parameter {param.name}: {problem}")
            resolved[param.name] = value
        if errors:
            raise ValueError("; ".join(errors))
        return resolved

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
