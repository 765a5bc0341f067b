"""A BatchJob's status, built as the API's `BatchJobStatus` (pure).

`StatusDraft` starts from the previous status (counts, plan, times survive passes that do not
observe them, e.g. when the output store cannot be read for a moment) and the state machine
(`batch_job_state`) sets the phase and what it learnt. Conditions follow kstatus as the other
kinds do: `Ready` only once Succeeded; `Reconciling` while the job moves on its own; `Stalled`
when it failed, was cancelled or waits for a human (e.g. a resume source still running).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from pydantic import ValidationError

from mlkube.api.batch_job import (
    BatchError,
    BatchJobStatus,
    ItemCounts,
    MiniBatchCounts,
    PlanSummary,
)
from mlkube.api.environment_status import EnvironmentRecord
from mlkube.builders.batch_plan import shard
from mlkube.builders.environment_use import EnvironmentUse
from mlkube.builders.status_conditions import condition_models
from mlkube.reconcile.batch_job_facts import MergeResult
from mlkube.reconcile.batch_progress import Progress
from mlkube.reconcile.conditions import Condition, set_condition

TERMINAL: Final = ("Succeeded", "Failed", "Cancelled")
Event = tuple[str, str, str]  # (type, reason, message)


class _Source(Protocol):
    @property
    def settings(self) -> Any: ...

    @property
    def environment(self) -> Any: ...


@dataclass
class StatusDraft:
    phase: str = "Pending"
    reason: str = "Pending"
    message: str = ""
    stalled: bool = False
    plan: PlanSummary | None = None
    mini_batches: MiniBatchCounts = field(default_factory=MiniBatchCounts)
    items: ItemCounts = field(default_factory=ItemCounts)
    progress: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    output_uri: str | None = None
    job: str | None = None
    last_errors: list[BatchError] = field(default_factory=list)
    deployment: str | None = None
    model: str | None = None
    environment: EnvironmentRecord | None = None
    conditions: list[Condition] = field(default_factory=list)

    @classmethod
    def from_status(cls, prev: dict[str, Any], source: _Source) -> StatusDraft:
        try:
            old = BatchJobStatus.model_validate(prev or {})
        except ValidationError:
            old = BatchJobStatus()  # a hand-edited status: start over, the facts are re-read
        settings = source.settings
        return cls(
            phase=old.phase or "Pending",
            reason=_reason(prev),
            message=old.message or "",
            plan=old.plan,
            mini_batches=old.mini_batches,
            items=old.items,
            progress=old.progress,
            start_time=old.start_time,
            completion_time=old.completion_time,
            output_uri=old.output_uri,
            job=old.job,
            last_errors=list(old.last_errors),
            deployment=settings.deployment if settings else old.deployment,
            model=settings.model if settings else old.model,
            environment=(
                EnvironmentRecord.model_validate(source.environment.record())
                if isinstance(source.environment, EnvironmentUse)
                else old.environment
            ),
            conditions=[dict(c) for c in prev.get("conditions") or []],
        )

    def set(self, phase: str, reason: str, message: str, *, stalled: bool = False) -> None:
        self.phase, self.reason, self.message, self.stalled = phase, reason, message, stalled

    def counts_total(self, mini_batches: int, items: int) -> None:
        self.mini_batches = MiniBatchCounts(total=mini_batches)
        self.items = ItemCounts(total=items)
        self.progress = 0

    def apply_progress(self, progress: Progress) -> None:
        self.mini_batches = progress.mini_batches
        self.items = progress.items
        self.progress = progress.percent
        if progress.last_errors:
            self.last_errors = list(progress.last_errors)

    def apply_indexes(self, completed: tuple[int, ...], failed: tuple[int, ...]) -> None:
        """Mini-batch counts from the Indexed Job alone (§4 fallback, output unreadable):
        shard sizes follow from the plan; items keep their last known values."""
        if self.plan is None or self.plan.indexes == 0:
            return
        total, indexes = self.mini_batches.total, self.plan.indexes

        def size(i: int) -> int:
            return len(shard(i, total, indexes)) if 0 <= i < indexes else 0

        done, bad = sum(map(size, completed)), sum(map(size, failed))
        self.mini_batches = self.mini_batches.model_copy(update={"succeeded": done, "failed": bad})
        self.progress = min(100, 100 * (done + bad) // total) if total else 0

    def apply_final(self, result: MergeResult) -> None:
        """The merge manifest's totals are final (they include parts reused by a resume)."""
        if result.mini_batches is not None:
            retried = max(result.mini_batches.retried, self.mini_batches.retried)
            self.mini_batches = result.mini_batches.model_copy(update={"retried": retried})
        if result.items is not None:
            self.items = result.items
        self.progress = 100

    def items_failed(self) -> int:
        return self.items.failed

    def progress_message(self) -> str:
        mb = self.mini_batches
        return (
            f"{self.progress}%: {mb.succeeded + mb.failed}/{mb.total} mini-batches, "
            f"{self.items.failed} failed items"
        )

    def final_message(self) -> str:
        return (
            f"{self.items.succeeded}/{self.items.total} items scored, {self.items.failed} "
            f"failed; output {self.output_uri}"
        )


def _reason(prev: dict[str, Any]) -> str:
    for cond in prev.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("reason"):
            return str(cond["reason"])
    return "Pending"


def build_status(draft: StatusDraft, generation: int, now: str) -> dict[str, Any]:
    terminal = draft.phase in TERMINAL
    conditions = draft.conditions
    moving = not terminal and not draft.stalled and draft.phase != "Suspended"
    for type_, value in (
        ("Ready", draft.phase == "Succeeded"),
        ("Reconciling", moving),
        ("Stalled", draft.stalled or draft.phase in ("Failed", "Cancelled")),
    ):
        conditions = set_condition(
            conditions, type_=type_, status=value, reason=draft.reason,
            message=draft.message, generation=generation, now=now,
        )  # fmt: skip
    return BatchJobStatus(
        phase=draft.phase,  # type: ignore[arg-type]
        observed_generation=generation,
        conditions=condition_models(conditions),
        deployment=draft.deployment,
        model=draft.model,
        environment=draft.environment,
        plan=draft.plan,
        mini_batches=draft.mini_batches,
        items=draft.items,
        progress=draft.progress,
        start_time=draft.start_time,
        completion_time=draft.completion_time,
        output_uri=draft.output_uri,
        job=draft.job,
        last_errors=draft.last_errors,
        message=draft.message or None,
    ).to_status()
