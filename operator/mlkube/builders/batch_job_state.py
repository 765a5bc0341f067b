"""The BatchJob state machine (pure): observed facts in, desired status and one action out.

Pending → Planning → Running (or Suspended) → Merging → Succeeded | Failed | Cancelled
(docs/batch-endpoints.md §3, §4, §6). Each pass decides from what exists now: the Jobs (created
with POST only, deterministic names), the recorded plan in status (the plan pod may be gone),
the summed progress files and the merge manifest; so a restarted operator decides the same.
Terminal phases are final: nothing is created or resumed after them. At most one Job is
created per pass; the next pass (a Job event or the poll) takes the next step.
"""

from __future__ import annotations

from dataclasses import replace

from mlkube.api.batch_job import PlanSummary
from mlkube.builders.batch_job import ScoreShape, Step, step_job_name, work_path
from mlkube.builders.batch_job_observed import (
    Decision,
    Observed,
    ResumeSource,
    progress_plan,
    replace_plan,
    same_folder,
)
from mlkube.builders.batch_job_status import TERMINAL, Event, StatusDraft, build_status
from mlkube.builders.batch_plan import index_count
from mlkube.builders.environment_use import EnvironmentProblem
from mlkube.builders.model_facts import ModelFacts

PLAN_FILE = "_mlkube/plan.json"
THRESHOLD = "ErrorThresholdExceeded"
INVALIDATED = "PartsInvalidated"
__all__ = ["Decision", "Observed", "ResumeSource", "decide", "progress_plan"]


def decide(obs: Observed) -> Decision:
    prev = obs.status
    draft = StatusDraft.from_status(prev, obs)
    if prev.get("phase") in TERMINAL:
        # Final; only make sure nothing runs on after a failure or a cancel.
        stop = {s: True for s, j in obs.jobs.items() if j.finished is None and not j.suspended}
        return _finish(obs, draft, suspend=stop if draft.phase != "Succeeded" else {}, poll=False)
    if obs.spec is None:
        return _fail(obs, draft, "InvalidSpec", f"invalid spec: {obs.spec_error}")
    if obs.spec.cancel:
        draft.set("Cancelled", "Cancelled", "cancelled: finished parts stay for resumeFrom")
        suspend = {s: True for s, j in obs.jobs.items() if j.finished is None}
        return _finish(obs, draft, suspend=suspend, events=[("Normal", "Cancelled", draft.message)])
    if obs.spec.resume_from and (early := _check_source(obs, draft)) is not None:
        return early
    if obs.refused:
        return _fail(obs, draft, "StoreNotAllowed", obs.refused)
    if obs.output is None:
        return _fail(
            obs,
            draft,
            "OutputNotConfigured",
            "spec.output is not set and the operator has no batch output store "
            "(MLKUBE_BATCH_OUTPUT_STORE)",
        )
    draft.output_uri = obs.output
    if draft.plan is None:
        return _planning(obs, draft)
    if "merge" in obs.jobs or _score_done(obs, draft):
        if obs.progress is not None:
            # The score pods' last progress (read once more in the pass that sees the score
            # Job complete): a fast job's failed items and lastErrors may be in no earlier one.
            draft.apply_progress(obs.progress)
        return _merging(obs, draft)
    return _scoring(obs, draft)


def _check_source(obs: Observed, draft: StatusDraft) -> Decision | None:
    src, spec = obs.source, obs.spec
    assert spec is not None and spec.resume_from
    if src is None or not src.found:
        draft.set(
            "Pending",
            "ResumeSourceNotFound",
            f"BatchJob {spec.resume_from} does not exist",
            stalled=True,
        )
        return _finish(obs, draft)
    if src.phase not in TERMINAL:
        draft.set(
            "Pending",
            "ResumeSourceActive",
            f"BatchJob {spec.resume_from} is still {src.phase or 'Pending'}: resume a "
            "finished job (cancel it first)",
            stalled=True,
        )
        return _finish(obs, draft)
    if src.plan is None or not src.output_uri:
        return _fail(
            obs,
            draft,
            "ResumeSourceHasNoPlan",
            f"BatchJob {spec.resume_from} never recorded a plan: there is nothing to "
            "resume, create a new job",
        )
    if spec.output is not None and not same_folder(spec.output.uri, src.output_uri):
        return _fail(
            obs,
            draft,
            "ResumeOutputMismatch",
            f"a resumed job writes into its source's output {src.output_uri}; "
            f"spec.output must be empty or equal",
        )
    return None


def _waiting(obs: Observed, draft: StatusDraft, phase: str, need_model: bool) -> Decision | None:
    """Pending (not failed) while the endpoint, deployment or Model is missing or not ready."""
    if obs.blocker is not None or obs.settings is None:
        reason, message = obs.blocker or ("EndpointNotFound", "the BatchEndpoint is missing")
        draft.set(phase, reason, message)
        return _finish(obs, draft)
    env = obs.environment
    if isinstance(env, EnvironmentProblem) and (need_model or phase == "Pending"):
        draft.set(phase, env.reason, f"waiting: {env.message}" if not env.degraded
                  else env.message, stalled=env.degraded)  # fmt: skip
        return _finish(obs, draft)
    if need_model and not isinstance(obs.model, ModelFacts):
        problem = obs.model
        reason = problem.reason if problem else "ModelNotFound"
        message = problem.message if problem else f"Model {obs.settings.model} does not exist"
        draft.set(phase, reason, f"waiting: {message}", stalled=reason == "ModelFailed")
        return _finish(obs, draft)
    return None


def _planning(obs: Observed, draft: StatusDraft) -> Decision:
    resume = bool(obs.spec and obs.spec.resume_from)
    job = obs.jobs.get("plan")
    if job is None:
        if (wait := _waiting(obs, draft, "Pending", need_model=resume)) is not None:
            return wait
        draft.set(
            "Planning",
            "Planning",
            "listing the input" if not resume else "checking the source's parts",
        )
        what = f"resuming {obs.spec.resume_from if obs.spec else ''}" if resume else "planning"
        return _finish(
            obs,
            draft,
            create="plan",
            events=[("Normal", "Started", f"{what}; output {obs.output}")],
        )
    result = obs.plan_result
    if job.finished == "Failed" or (job.finished and result and result.error):
        detail = (result.error if result and result.error else job.message) or job.reason
        return _fail(obs, draft, "PlanFailed", f"the plan step failed: {detail}")
    if job.finished is None or result is None:
        waiting = "planning" if job.finished is None else "plan done, reading its summary"
        draft.set("Planning", "Planning", waiting)
        return _finish(obs, draft)
    settings = obs.settings
    instances = settings.instance_count if settings else 1
    if resume:
        src = obs.source
        assert src is not None and src.plan is not None
        remaining = result.remaining or 0
        draft.plan = replace_plan(src.plan, indexes=index_count(remaining, instances))
        draft.counts_total(remaining, 0)
        if result.invalidated:
            # §6: parts of another model or settings are never mixed in; say why it reruns.
            source = obs.spec.resume_from if obs.spec else ""
            message = (
                f"{result.invalidated} finished parts of {source} were made with another "
                f"model or settings: {remaining} of {src.plan.mini_batches} mini-batches run again"
            )
            decision = _scoring(obs, draft)
            return replace(decision, events=[("Warning", INVALIDATED, message), *decision.events])
    else:
        if result.mini_batches == 0:
            return _fail(
                obs, draft, "InputEmpty", "the input holds no data files: nothing to score"
            )
        draft.plan = PlanSummary(
            digest=result.digest,
            uri=f"{(obs.output or '').rstrip('/')}/{PLAN_FILE}",
            mini_batches=result.mini_batches,
            items=result.items,
            items_estimated=result.items_estimated,
            indexes=index_count(result.mini_batches, instances),
        )
        draft.counts_total(result.mini_batches, result.items)
    return _scoring(obs, draft)


def _score_done(obs: Observed, draft: StatusDraft) -> bool:
    job = obs.jobs.get("score")
    no_work = draft.plan is not None and draft.plan.indexes == 0
    return (job is not None and job.finished == "Complete") or (job is None and no_work)


def _threshold_exceeded(obs: Observed, failed: int) -> bool:
    threshold = obs.settings.error_threshold if obs.settings else -1
    return threshold >= 0 and failed > threshold


def _scoring(obs: Observed, draft: StatusDraft) -> Decision:
    assert obs.spec is not None and draft.plan is not None
    if draft.plan.indexes == 0:
        return _merging(obs, draft)
    job = obs.jobs.get("score")
    draft.job = step_job_name(obs.name, "score", obs.uid)
    if obs.progress is not None:
        draft.apply_progress(obs.progress)
    elif job is not None and obs.store_unreadable:
        draft.apply_indexes(job.completed_indexes, job.failed_indexes)
    suspended = obs.spec.suspend
    if job is None:
        if (wait := _waiting(obs, draft, "Pending", need_model=True)) is not None:
            return wait
        work = work_path(obs.name) if obs.spec.resume_from else None
        shape = ScoreShape(plan_digest=draft.plan.digest, indexes=draft.plan.indexes, work=work)
        draft.start_time = draft.start_time or obs.now
        draft.set(
            *(
                ("Suspended", "Suspended", "suspended before scoring")
                if suspended
                else ("Running", "Running", f"scoring {draft.plan.mini_batches} mini-batches")
            )
        )
        return _finish(obs, draft, create="score", shape=shape)
    failed_items = draft.items_failed()
    reasons = obs.progress.reasons if obs.progress else []
    if _threshold_exceeded(obs, failed_items) or THRESHOLD in reasons:
        threshold = obs.settings.error_threshold if obs.settings else -1
        message = f"{failed_items} failed items exceed the error threshold {threshold}"
        draft.set("Failed", THRESHOLD, message, stalled=True)
        stop = {"score": True} if job.finished is None else {}  # a failed Job is over already
        return _finish(obs, draft, suspend=stop, events=[("Warning", THRESHOLD, message)])
    if job.finished == "Failed":
        return _fail(
            obs,
            draft,
            "ScoreFailed",
            f"scoring failed ({job.reason}): {job.message or 'see the pods logs'}",
        )
    want = {"score": suspended} if job.suspended != suspended else {}
    if suspended:
        draft.set("Suspended", "Suspended", "suspended: running pods stop, finished parts stay")
    else:
        draft.set("Running", "Running", draft.progress_message())
    return _finish(obs, draft, suspend=want)


def _merging(obs: Observed, draft: StatusDraft) -> Decision:
    job = obs.jobs.get("merge")
    if job is None:
        if (wait := _waiting(obs, draft, "Merging", need_model=False)) is not None:
            return wait
        draft.set("Merging", "Merging", "merging the parts")
        return _finish(obs, draft, create="merge")
    result = obs.merge_result
    if job.finished == "Failed" or (job.finished and result and result.error):
        detail = (result.error if result and result.error else job.message) or job.reason
        return _fail(obs, draft, "MergeFailed", f"the merge step failed: {detail}")
    if job.finished is None or result is None or result.items is None:
        draft.set(
            "Merging",
            "Merging",
            "merging the parts" if job.finished is None else "merge done, reading the manifest",
        )
        return _finish(obs, draft)
    draft.apply_final(result)
    if _threshold_exceeded(obs, result.items.failed):
        threshold = obs.settings.error_threshold if obs.settings else -1
        message = f"{result.items.failed} failed items exceed the error threshold {threshold}"
        draft.set("Failed", THRESHOLD, message, stalled=True)
        return _finish(obs, draft, events=[("Warning", THRESHOLD, message)])
    message = draft.final_message()
    draft.set("Succeeded", "Succeeded", message)
    return _finish(obs, draft, events=[("Normal", "Succeeded", message)])


def _fail(obs: Observed, draft: StatusDraft, reason: str, message: str) -> Decision:
    draft.set("Failed", reason, message, stalled=True)
    suspend = {s: True for s, j in obs.jobs.items() if j.finished is None}
    return _finish(
        obs, draft, suspend=suspend, events=[("Warning", "Failed", f"{reason}: {message}")]
    )


def _finish(
    obs: Observed,
    draft: StatusDraft,
    *,
    create: Step | None = None,
    shape: ScoreShape | None = None,
    suspend: dict[str, bool] | None = None,
    events: list[Event] | None = None,
    poll: bool | None = None,
) -> Decision:
    if draft.phase in TERMINAL:
        draft.completion_time = draft.completion_time or obs.now
    status = build_status(draft, obs.generation, obs.now)
    return Decision(
        status=status,
        create=create,
        shape=shape,
        suspend=suspend or {},
        events=events or [],
        poll=draft.phase not in TERMINAL if poll is None else poll,
    )
