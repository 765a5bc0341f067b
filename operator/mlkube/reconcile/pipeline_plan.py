"""What a PipelineRun does next, decided from what is observed now (pure, level-based).

The controller reads the run's status, its snapshot and its Jobs, calls `next_actions`, and
carries out the plan (create the Jobs of `start`, read the summaries of `complete`, delete
`delete_jobs`, write the step phases and the run phase). Nothing here remembers a previous
pass: the same observation gives the same plan, and because a step's attempt number comes from
the Jobs that exist (plus the status' `attempts`), a controller restarted anywhere in a pass
never starts an attempt whose Job already exists (docs/pipelines.md §4).

Rules, in the order a pass applies them (steps in topological order):
- a step whose latest Job is active is Running (it holds a `parallelism` slot); Complete →
  `complete` (the controller records its summary); Failed, or a Running step whose Job is gone
  → retried (attempt N+1 after backoff, reconcile/pipeline_retry.py) up to `retry.limit`.
- a Pending step below a Failed, Cancelled or failure-Skipped step is Skipped. A step Skipped by
  its own `when` (or for needing outputs of such a step) does not block steps that only order
  after it (`dependsOn`), but a step consuming its outputs is Skipped too.
- a step whose dependencies are done evaluates `when` (false → Skipped; an error → Failed
  with the message) and is ready; ready steps start in name order, container steps up to
  `parallelism` running at once (built-in steps run in the operator and take no slot).
- failFast and a Failed step without continueOnFailure: running steps are Cancelled (their
  Jobs deleted), the rest Skipped. `cancel`: every unfinished step Cancelled, Jobs deleted.
The run phase and kstatus conditions follow from the steps (reconcile/pipeline_outcome.py).
Jobs come in as JobAttempts (reconcile/pipeline_jobs.py); planning again within one pass, add
the Jobs just created as Active, or a Running step without its Job reads as a Job gone.

    next_actions(snapshot, status, jobs, now, *, parameters, cancel=False, generation=None)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.pipeline import PipelineSpec
from mlkube.api.pipeline_step import Step
from mlkube.reconcile.conditions import Condition
from mlkube.reconcile.pipeline_dag import ancestors, graph_of, topological_order
from mlkube.reconcile.pipeline_jobs import JobAttempt as JobAttempt
from mlkube.reconcile.pipeline_outcome import FINISHED, run_outcome
from mlkube.reconcile.pipeline_retry import next_attempt_at
from mlkube.reconcile.pipeline_when import WhenError, evaluate_when, quote_when, step_view

CANCELLED_BY_USER: Final = "the run was cancelled"


@dataclass(frozen=True)
class StepStart:
    """Start `step` now: create the Job of `attempt` (container) or run it in the operator."""

    step: str
    attempt: int
    builtin: bool = False


@dataclass(frozen=True)
class StepRetry:
    """`step` failed attempt `attempt - 1`; attempt `attempt` starts at `at` (phase Pending,
    status nextAttemptTime)."""

    step: str
    attempt: int
    at: dt.datetime
    message: str


@dataclass(frozen=True)
class RunPlan:
    """Everything one pass should do; `phases` are the step phases once it is done."""

    start: tuple[StepStart, ...]
    retry: tuple[StepRetry, ...]
    complete: tuple[str, ...]  # latest Job Complete: read its summary, mark Succeeded
    running: tuple[str, ...]  # an active Job: phase Running
    drive: tuple[str, ...]  # built-in steps already Running: keep driving them
    skip: Mapping[str, str]  # → Skipped, with the message
    fail: Mapping[str, str]  # → Failed, with the message
    cancel: Mapping[str, str]  # → Cancelled, with the message
    delete_jobs: tuple[str, ...]
    phases: Mapping[str, str]
    phase: str
    message: str
    progress: str
    conditions: list[Condition]
    requeue_after: float | None = None


@dataclass
class _Pass:
    """The working state of one `next_actions` call."""

    steps: dict[str, Step]
    status: dict[str, Mapping[str, Any]]
    now: dt.datetime
    phases: dict[str, str]
    candidates: list[StepStart] = field(default_factory=list)
    retry: list[StepRetry] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    drive: list[str] = field(default_factory=list)
    skip: dict[str, str] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)
    cancel: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    benign: set[str] = field(default_factory=set)  # Skipped, but not because of a failure

    def mark(self, name: str, phase: str, message: str, into: dict[str, str]) -> None:
        self.phases[name] = phase
        into[name] = message

    def bad(self, name: str) -> bool:
        phase = self.phases.get(name)
        return phase in ("Failed", "Cancelled") or (phase == "Skipped" and name not in self.benign)

    def failed_attempt(
        self, name: str, attempt: int, message: str, ended: dt.datetime | None
    ) -> None:
        step, st = self.steps[name], self.status.get(name, {})
        if attempt >= step.retry.limit + 1:
            tries = f" (after {attempt} attempts)" if attempt > 1 else ""
            self.mark(name, "Failed", message + tries, self.fail)
            return
        self.phases[name] = "Pending"
        at = next_attempt_at(
            step.retry.backoff, attempt, ended=ended, recorded=st.get("nextAttemptTime"),
            recorded_attempts=int(st.get("attempts") or 0), now=self.now,
        )  # fmt: skip
        if at <= self.now:
            self.candidates.append(StepStart(name, attempt + 1))
        else:
            self.retry.append(StepRetry(name, attempt + 1, at, message))


def _observe_container(p: _Pass, name: str, attempts: list[JobAttempt]) -> bool:
    """Fold the step's Jobs into the pass; False when it has never started (no attempts)."""
    st = p.status.get(name, {})
    recorded = int(st.get("attempts") or 0)
    latest = attempts[-1] if attempts else None
    if latest is not None and latest.attempt >= recorded:
        if latest.state == "Active":
            p.phases[name] = "Running"
            p.running.append(name)
        elif latest.state == "Complete":
            p.phases[name] = "Running"
            p.complete.append(name)
        else:
            p.failed_attempt(
                name, latest.attempt, latest.message or f"Job {latest.name} failed",
                latest.finished_at,
            )  # fmt: skip
        return True
    if recorded > 0:
        gone = f"Job {st.get('job')} is gone" if st.get("job") else "its Job is gone"
        message = gone if p.phases[name] == "Running" else str(st.get("message") or gone)
        p.failed_attempt(name, recorded, message, None)
        return True
    return False


def _consider(
    p: _Pass, name: str, graph: Mapping[str, tuple[str, ...]], parameters: Mapping[str, Any]
) -> None:
    """A step that has not started: skip it, fail it (bad `when`), wait, or make it ready."""
    step = p.steps[name]
    deps = graph[name]
    blocker = next((d for d in deps if p.bad(d)), None)
    if blocker is not None:
        why = {"Failed": "failed", "Cancelled": "was cancelled"}.get(
            p.phases[blocker], "was skipped"
        )
        p.mark(name, "Skipped", f"upstream step {blocker} {why}", p.skip)
        return
    if any(p.phases[d] not in ("Succeeded", "Skipped") for d in deps):
        return
    consumed = sorted({ref.step for _, ref in step.references()})
    skipped = next((d for d in consumed if p.phases.get(d) == "Skipped"), None)
    if skipped is not None:
        p.benign.add(name)
        p.mark(name, "Skipped", f"needs outputs of step {skipped}, which was skipped", p.skip)
        return
    if step.when:
        views = {a: {**step_view(p.status.get(a, {})), "phase": p.phases[a]}
                 for a in sorted(ancestors(graph, name))}  # fmt: skip
        try:
            holds = evaluate_when(step.when, parameters, views)
        except WhenError as err:
            p.mark(name, "Failed", str(err), p.fail)
            return
        if not holds:
            p.benign.add(name)
            p.mark(name, "Skipped", f"when {quote_when(step.when)} is false", p.skip)
            return
    p.candidates.append(StepStart(name, 1, builtin=step.type != "container"))


def _stop_all(p: _Pass, active: Mapping[str, list[str]], order: list[str], why: str) -> None:
    """failFast: running steps Cancelled (Jobs deleted), unstarted ones Skipped."""
    for name in order:
        if p.phases[name] in FINISHED or name in p.complete:
            continue
        started = name in p.running or name in p.drive or any(r.step == name for r in p.retry)
        started = started or any(c.step == name and c.attempt > 1 for c in p.candidates)
        if started:
            p.mark(name, "Cancelled", f"cancelled: {why}", p.cancel)
        else:
            p.mark(name, "Skipped", f"skipped: {why}", p.skip)
        p.delete.extend(active.get(name, ()))
    p.candidates.clear()
    p.retry.clear()
    p.running.clear()
    p.drive.clear()


def next_actions(
    snapshot: PipelineSpec,
    status: Mapping[str, Any],
    jobs: Iterable[JobAttempt],
    now: dt.datetime,
    *,
    parameters: Mapping[str, Any],
    cancel: bool = False,
    generation: int | None = None,
) -> RunPlan:
    """The plan for the run as observed: `status` is the run's status (wire form),
    `parameters` the typed values (pipeline_params.typed_parameters). Raises DagError on a
    graph with a cycle or unknown steps (the caller fails the run with its message)."""
    steps = {s.name: s for s in snapshot.steps}
    graph = graph_of(snapshot.steps)
    order = topological_order(graph)
    by_name = {str(s.get("name")): s for s in status.get("steps") or [] if s.get("name") in steps}
    phases = {n: str(by_name.get(n, {}).get("phase") or "Pending") for n in order}
    p = _Pass(steps=steps, status=by_name, now=now, phases=phases)
    attempts: dict[str, list[JobAttempt]] = {}
    for job in sorted(jobs, key=lambda j: (j.step, j.attempt, j.name)):
        if job.step in steps:
            attempts.setdefault(job.step, []).append(job)
    active = {n: [j.name for j in js if j.state == "Active"] for n, js in attempts.items()}
    for name in order:
        if p.phases[name] in FINISHED:
            if p.phases[name] == "Skipped" and not any(p.bad(d) for d in graph[name]):
                p.benign.add(name)
            continue
        if cancel:
            p.mark(name, "Cancelled", CANCELLED_BY_USER, p.cancel)
            continue
        if steps[name].type == "container":
            if _observe_container(p, name, attempts.get(name, [])):
                continue
        elif p.phases[name] == "Running":
            p.drive.append(name)
            continue
        _consider(p, name, graph, parameters)
    if cancel:
        p.delete.extend(j for n in order for j in active.get(n, ()))
    failing = [n for n in order if p.phases[n] == "Failed" and not steps[n].continue_on_failure]
    if snapshot.fail_fast and failing and not cancel:
        _stop_all(p, active, order, f"step {failing[0]} failed (failFast)")
    starts, slots = [], snapshot.parallelism - len(p.running)
    for cand in sorted(p.candidates, key=lambda c: c.step):
        if not cand.builtin:
            if slots <= 0:
                continue
            slots -= 1
        starts.append(cand)
    waits = [(r.at - now).total_seconds() for r in p.retry]
    outcome = run_outcome(
        snapshot, p.phases, by_name,
        messages={**p.fail, **p.cancel}, cancel=cancel,
        started=bool(starts or attempts or any(s.get("attempts") for s in by_name.values())),
        conditions=list(status.get("conditions") or []), generation=generation, now=now,
    )  # fmt: skip
    return RunPlan(
        start=tuple(starts),
        retry=tuple(p.retry),
        complete=tuple(p.complete),
        running=tuple(p.running),
        drive=tuple(p.drive),
        skip=p.skip,
        fail=p.fail,
        cancel=p.cancel,
        delete_jobs=tuple(sorted(set(p.delete))),
        phases=p.phases,
        phase=outcome.phase,
        message=outcome.message,
        progress=outcome.progress,
        conditions=outcome.conditions,
        requeue_after=max(0.0, min(waits)) if waits else None,
    )
