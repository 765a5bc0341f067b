"""One pass of a PipelineRun: ask the planner (reconcile/pipeline_plan.py), carry the plan out.

The planner decides from the status and the Jobs alone; this module does the I/O the plan
names: read the summaries of completed attempts (outputs recorded, cache entry written),
resolve and start ready steps (cache hit, single-flight wait, or a Job), drive built-in
steps, delete Jobs (cancel, failFast, a `main` that never ran) and write each step's phase
and message. A start can finish a step at once (a cache hit, a built-in step), which may make
more steps ready, so the pass plans again, with the Jobs it created counted as Active, until
nothing changes.
"""

from __future__ import annotations

import copy
from typing import Any

from mlkube.controllers.kube import ApiError
from mlkube.controllers.pipeline_builtins import BuiltinRunner, run_builtin_step
from mlkube.controllers.pipeline_decide import image_digest
from mlkube.controllers.pipeline_observe import failure_message, image_id, stuck_main
from mlkube.controllers.pipeline_start import start
from mlkube.controllers.pipeline_steps import RunContext, finish, record_success, stamp
from mlkube.reconcile.pipeline_cache import image_moved
from mlkube.reconcile.pipeline_jobs import JobAttempt, job_attempts
from mlkube.reconcile.pipeline_plan import RunPlan, next_actions

MESSAGE_CAP = 1024


def _latest(attempts: list[JobAttempt]) -> dict[str, JobAttempt]:
    found: dict[str, JobAttempt] = {}
    for a in sorted(attempts, key=lambda a: (a.step, a.attempt)):
        found[a.step] = a
    return found


def _why(ctx: RunContext, attempt: JobAttempt | None, fallback: str) -> str:
    """A failed attempt in the words of the container that failed, else the plan's words."""
    if attempt is None or attempt.state != "Failed":
        return fallback
    return failure_message(ctx.kube, ctx.run.namespace, attempt.name, attempt.message or fallback)


def _delete(ctx: RunContext, name: str, uids: dict[str, str]) -> None:
    try:
        ctx.kube.delete("batch/v1", "Job", name, ctx.run.namespace, propagation="Background",
                        uid=uids.get(name))  # fmt: skip
    except ApiError as err:
        if err.status not in (404, 409):
            raise


def _mark(ctx: RunContext, name: str, phase: str, message: str, event: str | None) -> None:
    st = ctx.steps[name]
    if st.get("phase") == phase and st.get("message") == message[-MESSAGE_CAP:]:
        return
    finish(ctx, st, phase, message)
    if event is not None:
        ctx.events.append(("Warning", event, f"step {name}: {message}"[:MESSAGE_CAP]))


def _apply(
    ctx: RunContext,
    plan: RunPlan,
    attempts: list[JobAttempt],
    uids: dict[str, str],
    obj: dict[str, Any],
    builtin: BuiltinRunner,
) -> None:
    latest = _latest(attempts)
    for job in plan.delete_jobs:
        _delete(ctx, job, uids)
    for name in plan.running:
        st, att = ctx.steps[name], latest[name]
        st.update(phase="Running", job=att.name, attempts=max(att.attempt, st.get("attempts", 0)))
        st.setdefault("startTime", stamp(ctx.now))
        st.pop("nextAttemptTime", None)
        stuck = stuck_main(ctx.kube, ctx.run.namespace, att.name, ctx.now)
        if stuck is not None:  # outputs would wait for ever: end the attempt here
            _delete(ctx, att.name, uids)
            attempts[:] = [a for a in attempts if a.name != att.name]
            st.update(phase="Pending", message=stuck)
    for name in plan.complete:
        st, att = ctx.steps[name], latest[name]
        st.update(job=att.name, attempts=max(att.attempt, st.get("attempts", 0)))
        ran = image_id(ctx.kube, ctx.run.namespace, att.name)
        if ran:
            st["imageDigest"] = ran[-512:]
        # A step on an Environment ran its image (recorded when it started).
        planned = ctx.step_spec(name).image or (st.get("environment") or {}).get("image") or ""
        keyed, _ = image_digest(planned, ctx.config.image_digests)
        moved = image_moved(keyed, ran)
        if not record_success(ctx, st, att.name, att.attempt, not_cached=moved):
            _mark(ctx, name, "Failed", "the step finished without a summary", "StepFailed")
        elif moved:
            ctx.events.append(("Warning", "ImageDigestMismatch", f"step {name}: {moved}"))
    for retry in plan.retry:
        st = ctx.steps[retry.step]
        due = stamp(retry.at)
        if st.get("nextAttemptTime") != due:
            why = _why(ctx, latest.get(retry.step), retry.message)
            st.update(
                phase="Pending",
                nextAttemptTime=due,
                message=f"attempt {retry.attempt - 1} failed: {why}"[-MESSAGE_CAP:],
            )
            ctx.events.append(("Warning", "StepRetrying",
                               f"step {retry.step} attempt {retry.attempt - 1} failed, "
                               f"retrying at {due}: {why}"[:MESSAGE_CAP]))  # fmt: skip
    for name, message in plan.fail.items():
        _mark(ctx, name, "Failed", _why(ctx, latest.get(name), message), "StepFailed")
    for name, message in plan.skip.items():
        _mark(ctx, name, "Skipped", message, None)
    for name, message in plan.cancel.items():
        _mark(ctx, name, "Cancelled", message, None)
    for name in plan.drive:
        run_builtin_step(ctx, ctx.step_spec(name), obj, builtin)
    for s in plan.start:
        step = ctx.step_spec(s.step)
        if s.builtin:
            run_builtin_step(ctx, step, obj, builtin)
            continue
        if s.attempt > 1 and not ctx.steps[s.step].get("nextAttemptTime"):
            # The backoff had already passed when the failure was seen (a short backoff, an
            # operator restart): no StepRetrying was posted above, so this retry says why here.
            why = _why(ctx, latest.get(s.step), "the attempt failed")
            ctx.events.append(("Warning", "StepRetrying",
                               f"step {s.step} attempt {s.attempt - 1} failed, retrying now: "
                               f"{why}"[:MESSAGE_CAP]))  # fmt: skip
        made = start(ctx, step, s.attempt)
        if made is not None:
            attempts.append(JobAttempt(s.step, s.attempt, made, "Active"))


def advance(
    ctx: RunContext,
    jobs: list[dict[str, Any]],
    obj: dict[str, Any],
    builtin: BuiltinRunner,
    conditions: list[dict[str, Any]],
    generation: int,
    typed: dict[str, Any],
) -> RunPlan:
    """Plan and act until the plan is a fixpoint; the last plan (phase, conditions)."""
    attempts = job_attempts(jobs)
    uids = {str(j["metadata"]["name"]): str(j["metadata"].get("uid")) for j in jobs}
    plan = None
    for _ in range(len(ctx.steps) + 2):
        status = {"steps": list(ctx.steps.values()), "conditions": conditions}
        plan = next_actions(ctx.pipeline, status, attempts, ctx.now, parameters=typed,
                            cancel=ctx.spec.cancel, generation=generation)  # fmt: skip
        before = copy.deepcopy(ctx.steps)
        _apply(ctx, plan, attempts, uids, obj, builtin)
        if ctx.steps == before:
            break
    assert plan is not None
    if plan.requeue_after is not None:
        ctx.requeue.append(max(1.0, plan.requeue_after))
    return plan
