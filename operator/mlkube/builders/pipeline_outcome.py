"""What a built-in pipeline step sees of the run and what it answers (docs/pipelines.md §4).

Built-in steps (`registerModel`, `evaluate`, `deploy`, `batch`) run inside the operator. The
PipelineRun controller calls `controllers.pipeline_builtin.run_builtin` on every reconcile until
the answer is `Done` or `Failed`; these plain frozen values are the whole interface between the
two, so either side can change its internals without touching the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

OutputType = Literal["artifact", "parameter", "metrics"]
InputSource = Literal["uri", "model", "step", "parameter"]


@dataclass(frozen=True)
class StepOutput:
    """One recorded output of a step (status.steps[].outputs[])."""

    name: str
    type: OutputType = "artifact"
    uri: str | None = None
    digest: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class ResolvedInput:
    """One input of a step as it ran: where from, and the content digest it was verified at.

    `source` says which of the step spec's input sources it was; `model` is the Model object
    name for `source == "model"`; `step`/`output` name the upstream output for `"step"`.
    """

    name: str
    source: InputSource
    uri: str | None = None
    digest: str | None = None
    model: str | None = None
    step: str | None = None
    output: str | None = None


@dataclass(frozen=True)
class StepResult:
    """A step of the run as the built-ins need it: its snapshot spec and what it produced.

    `spec` is the step from the run's snapshot in wire form (camelCase, as in the
    `<run>-spec` ConfigMap). `image_digest` is `status.steps[].imageDigest` (the kubelet's
    imageID: `sha256:…` or `repo@sha256:…`). `inputs` are the step's inputs as resolved
    when it ran (empty when unknown); `metrics` are its recorded metrics, flattened.
    """

    name: str
    phase: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, StepOutput] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    image_digest: str | None = None
    inputs: Sequence[ResolvedInput] = ()
    produced_models: Sequence[str] = ()
    environment: Mapping[str, str] | None = (
        None  # status.steps[].environment {name, version, image}
    )


@dataclass(frozen=True)
class CacheNote:
    """Why a built-in step did no new work: `status.steps[].cache {hit, reason, sourceRun}`
    (e.g. registerModel found a Model registering exactly this artifact)."""

    hit: bool
    reason: str
    source_run: str | None = None


@dataclass(frozen=True)
class Done:
    """The step succeeded: record these outputs/metrics (and Models) in its status; `cache`,
    when set, goes to the step's `cache` (a reuse of earlier work)."""

    message: str
    outputs: tuple[StepOutput, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    produced_models: tuple[str, ...] = ()
    cache: CacheNote | None = None


@dataclass(frozen=True)
class Waiting:
    """Not finished: keep the step Running with `message`, call again after `requeue_after` s."""

    message: str
    requeue_after: float = 5.0


@dataclass(frozen=True)
class Failed:
    """The step failed for good (no retry helps): `reason` is a CamelCase word for Events."""

    message: str
    reason: str


BuiltinOutcome = Done | Waiting | Failed
