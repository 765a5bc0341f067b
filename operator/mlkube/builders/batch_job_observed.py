"""What one BatchJob pass observed and what it decided: the state machine's inputs and output.

Kept apart from `batch_job_state` so the controller builds an `Observed` without importing the
decisions, and tests build one field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlkube.api.batch_job import BatchJobSpec, PlanSummary
from mlkube.builders.batch_job import ScoreShape, Step
from mlkube.builders.batch_job_status import Event
from mlkube.builders.batch_settings import BatchSettings
from mlkube.builders.environment_use import EnvironmentProblem, EnvironmentUse
from mlkube.builders.model_facts import ModelFacts, ModelProblem
from mlkube.reconcile.batch_job_facts import JobFacts, MergeResult, PlanResult
from mlkube.reconcile.batch_progress import Progress


@dataclass(frozen=True)
class ResumeSource:
    """The BatchJob named by spec.resumeFrom (found=False: it does not exist)."""

    found: bool
    phase: str | None = None
    plan: PlanSummary | None = None
    output_uri: str | None = None


@dataclass(frozen=True)
class Observed:
    name: str
    uid: str
    generation: int
    spec: BatchJobSpec | None
    status: dict[str, Any]
    now: str
    spec_error: str | None = None
    output: str | None = None  # resolved output folder (the source's for a resumed job)
    settings: BatchSettings | None = None
    refused: str | None = None  # input or output outside the namespace's allowed stores
    blocker: tuple[str, str] | None = None  # endpoint/deployment missing: (reason, message)
    model: ModelFacts | ModelProblem | None = None
    environment: EnvironmentUse | EnvironmentProblem | None = None  # deployment.environment
    source: ResumeSource | None = None
    jobs: dict[str, JobFacts] = field(default_factory=dict)  # step -> existing Job
    plan_result: PlanResult | None = None
    progress: Progress | None = None
    store_unreadable: bool = False  # counts then come from the Job's completed/failed indexes
    merge_result: MergeResult | None = None


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]
    create: Step | None = None
    shape: ScoreShape | None = None  # for create == "score"
    suspend: dict[str, bool] = field(default_factory=dict)  # step -> Job's desired suspend
    events: list[Event] = field(default_factory=list)
    poll: bool = True  # not terminal: keep the progress loop running


def same_folder(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def progress_plan(status: dict[str, Any]) -> PlanSummary | None:
    """The plan progress files are summed against: a resumed job's shards cover only the
    mini-batches left to run (status.miniBatches.total), not the whole plan."""
    raw = status.get("plan")
    if not raw:
        return None
    plan = PlanSummary.model_validate(raw)
    total = int((status.get("miniBatches") or {}).get("total", plan.mini_batches))
    if total != plan.mini_batches:
        return replace_plan(plan, mini_batches=total, items=0)
    return plan


def replace_plan(plan: PlanSummary, **changes: Any) -> PlanSummary:
    return plan.model_copy(update=changes)
