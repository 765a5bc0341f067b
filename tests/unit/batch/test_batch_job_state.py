"""The BatchJob state machine: every transition from observed facts to status and action."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlkube.api.batch import BatchEndpointSpec
from mlkube.api.batch_job import BatchJobSpec, ItemCounts, MiniBatchCounts, PlanSummary
from mlkube.builders.batch_job_state import Decision, Observed, ResumeSource, decide, progress_plan
from mlkube.builders.batch_settings import resolve_settings
from mlkube.builders.model_facts import ModelFacts, ModelProblem
from mlkube.reconcile.batch_job_facts import (
    JobFacts,
    MergeResult,
    PlanResult,
    index_set,
    job_facts,
    parse_merge_result,
    parse_plan_result,
)
from mlkube.reconcile.batch_progress import sum_progress

DIGEST = "sha256:" + "a" * 64
PLAN = "sha256:" + "b" * 64
OUT = "s3://batch/ml/nightly/"
NOW = "2026-11-30T06:00:00Z"
MODEL = ModelFacts(
    name="m", model_name="m", version="1", framework="sklearn", uri="s3://models/m", digest=DIGEST
)
ENDPOINT = BatchEndpointSpec.model_validate(
    {"deployments": [{"name": "d", "model": "m", "instanceCount": 2, "errorThreshold": 3}]}
)
SPEC = BatchJobSpec.model_validate({"endpoint": "e", "input": {"uri": "s3://data/in/"}})
SETTINGS = resolve_settings(ENDPOINT, SPEC)


def obs(**changes: Any) -> Observed:
    base = Observed(
        name="nightly",
        uid="u1",
        generation=1,
        spec=SPEC,
        status={},
        now=NOW,
        output=OUT,
        settings=SETTINGS,
        model=MODEL,
    )
    return replace(base, **changes)


def cond(decision: Decision, type_: str) -> tuple[str, str]:
    found = [c for c in decision.status["conditions"] if c["type"] == type_]
    return found[0]["status"], found[0]["reason"]


def planned(mini_batches: int = 10, **status: Any) -> dict[str, Any]:
    """A status after planning: 10 mini-batches of 100 items, 8 indexes."""
    d = decide(
        obs(
            jobs={"plan": JobFacts("p", "Complete")},
            plan_result=PlanResult(
                digest=PLAN, mini_batches=mini_batches, items=100 * mini_batches
            ),
        )
    )
    return {**d.status, **status}


def progress(
    succeeded: int,
    failed: int,
    items_failed: int = 0,
    done: bool = False,
    reason: str | None = None,
) -> Any:
    plan = PlanSummary(digest=PLAN, uri="x", mini_batches=10, items=1000, indexes=1)
    doc = {
        "index": 0,
        "indexes": 1,
        "planDigest": PLAN,
        "done": done,
        "miniBatches": {"total": 10, "succeeded": succeeded, "failed": failed, "retried": 1},
        "items": {
            "total": 100 * (succeeded + failed),
            "succeeded": 100 * (succeeded + failed) - items_failed,
            "failed": items_failed,
        },
        "lastErrors": [{"miniBatch": 3, "item": "a.csv", "message": "boom", "attempt": 2}],
        **({"reason": reason} if reason else {}),
    }
    return sum_progress(plan, [doc])


def test_a_new_job_creates_the_plan_job_and_says_started() -> None:
    d = decide(obs())
    assert d.create == "plan" and d.status["phase"] == "Planning" and d.poll
    assert d.events == [("Normal", "Started", f"planning; output {OUT}")]
    assert cond(d, "Reconciling") == ("True", "Planning") and cond(d, "Ready")[0] == "False"
    assert d.status["outputUri"] == OUT and d.status["deployment"] == "d"


def test_missing_endpoint_or_model_waits_pending_with_a_clear_message() -> None:
    d = decide(obs(settings=None, blocker=("EndpointNotFound", "BatchEndpoint e does not exist")))
    assert (d.create, d.status["phase"], d.status["message"]) == (
        None,
        "Pending",
        "BatchEndpoint e does not exist",
    )
    assert cond(d, "Reconciling") == ("True", "EndpointNotFound")
    # Planning needs no model; scoring does.
    no_model = decide(
        obs(
            model=ModelProblem("m", "ModelNotFound", "Model m does not exist"),
            status=planned(),
            jobs={"plan": JobFacts("p", "Complete")},
        )
    )
    assert no_model.create is None and no_model.status["phase"] == "Pending"
    assert no_model.status["message"] == "waiting: Model m does not exist"
    assert decide(obs(model=None)).create == "plan"
    failed = decide(
        obs(model=ModelProblem("m", "ModelFailed", "Model m failed: x"), status=planned())
    )
    assert cond(failed, "Stalled") == ("True", "ModelFailed")


def test_no_output_anywhere_fails_clearly() -> None:
    d = decide(obs(output=None))
    assert d.status["phase"] == "Failed" and not d.poll
    assert "MLKUBE_BATCH_OUTPUT_STORE" in d.status["message"]
    assert cond(d, "Stalled") == ("True", "OutputNotConfigured")
    assert d.status["completionTime"] == NOW


def test_planning_until_the_summary_is_read() -> None:
    running = decide(obs(jobs={"plan": JobFacts("p")}))
    assert running.create is None and running.status["phase"] == "Planning"
    done = decide(obs(jobs={"plan": JobFacts("p", "Complete")}))
    assert done.status["phase"] == "Planning" and "summary" in done.status["message"]


def test_the_plan_summary_is_recorded_and_the_score_job_created() -> None:
    d = decide(
        obs(
            jobs={"plan": JobFacts("p", "Complete")},
            plan_result=PlanResult(digest=PLAN, mini_batches=10, items=1000, items_estimated=True),
        )
    )
    assert d.create == "score" and d.shape is not None
    assert (d.shape.plan_digest, d.shape.indexes, d.shape.work) == (PLAN, 8, None)
    assert d.status["plan"] == {
        "digest": PLAN,
        "uri": OUT + "_mlkube/plan.json",
        "miniBatches": 10,
        "items": 1000,
        "itemsEstimated": True,
        "indexes": 8,
    }
    assert d.status["phase"] == "Running" and d.status["startTime"] == NOW
    assert d.status["miniBatches"]["total"] == 10 and d.status["items"]["total"] == 1000
    assert d.status["job"].startswith("nightly-score-")


def test_empty_input_fails_with_input_empty() -> None:
    d = decide(
        obs(
            jobs={"plan": JobFacts("p", "Complete")},
            plan_result=PlanResult(digest=PLAN, mini_batches=0, items=0),
        )
    )
    assert d.status["phase"] == "Failed" and cond(d, "Stalled") == ("True", "InputEmpty")
    assert d.events[0][:2] == ("Warning", "Failed") and d.create is None
    assert d.events[0][2].startswith("InputEmpty: ")


def test_a_failed_plan_fails_the_job_with_its_error() -> None:
    d = decide(
        obs(
            jobs={"plan": JobFacts("p", "Failed", "PodFailurePolicy", "exit 43")},
            plan_result=PlanResult(error="PlanError: already holds another plan"),
        )
    )
    assert d.status["phase"] == "Failed" and "already holds another plan" in d.status["message"]
    no_message = decide(obs(jobs={"plan": JobFacts("p", "Failed", "BackoffLimitExceeded", "")}))
    assert "BackoffLimitExceeded" in no_message.status["message"]


def test_running_sums_progress_and_keeps_suspend_in_sync() -> None:
    jobs = {"plan": JobFacts("p", "Complete"), "score": JobFacts("s")}
    d = decide(obs(status=planned(), jobs=jobs, progress=progress(4, 1, items_failed=2)))
    assert d.status["phase"] == "Running" and d.create is None and d.suspend == {}
    assert d.status["progress"] == 50
    assert d.status["miniBatches"] == {"total": 10, "succeeded": 4, "failed": 1, "retried": 1}
    assert d.status["lastErrors"] == [
        {"miniBatch": 3, "item": "a.csv", "message": "boom", "attempt": 2}
    ]
    # No fresh progress this pass (store unreadable): the last counts stay.
    again = decide(obs(status=d.status, jobs=jobs))
    assert again.status["progress"] == 50 and again.status["items"] == d.status["items"]
    paused = decide(obs(spec=SPEC.model_copy(update={"suspend": True}), status=d.status, jobs=jobs))
    assert paused.suspend == {"score": True} and paused.status["phase"] == "Suspended"
    assert cond(paused, "Reconciling")[0] == "False" and cond(paused, "Stalled")[0] == "False"
    resumed = decide(
        obs(status=paused.status, jobs={**jobs, "score": JobFacts("s", suspended=True)})
    )
    assert resumed.suspend == {"score": False} and resumed.status["phase"] == "Running"


def test_suspended_before_scoring_creates_a_suspended_score_job() -> None:
    d = decide(
        obs(
            spec=SPEC.model_copy(update={"suspend": True}),
            status=planned(),
            jobs={"plan": JobFacts("p", "Complete")},
        )
    )
    assert d.create == "score" and d.status["phase"] == "Suspended"


def test_error_threshold_in_items_suspends_and_fails() -> None:
    jobs = {"plan": JobFacts("p", "Complete"), "score": JobFacts("s")}
    at = decide(obs(status=planned(), jobs=jobs, progress=progress(3, 0, items_failed=3)))
    assert at.status["phase"] == "Running"  # 3 failed items are tolerated by threshold 3
    over = decide(obs(status=planned(), jobs=jobs, progress=progress(3, 1, items_failed=4)))
    assert over.status["phase"] == "Failed" and over.suspend == {"score": True}
    assert cond(over, "Stalled") == ("True", "ErrorThresholdExceeded")
    assert over.events == [
        ("Warning", "ErrorThresholdExceeded", "4 failed items exceed the error threshold 3")
    ]
    # -1 tolerates any number; a worker's own exit 42 reason still fails the job.
    lenient = replace(SETTINGS, error_threshold=-1)
    ok = decide(
        obs(
            settings=lenient, status=planned(), jobs=jobs, progress=progress(3, 1, items_failed=400)
        )
    )
    assert ok.status["phase"] == "Running"
    by_worker = decide(
        obs(status=planned(), jobs=jobs, progress=progress(1, 0, reason="ErrorThresholdExceeded"))
    )
    assert by_worker.status["phase"] == "Failed"


def test_a_failed_score_job_fails_the_batch_job() -> None:
    jobs = {
        "plan": JobFacts("p", "Complete"),
        "score": JobFacts("s", "Failed", "FailedIndexes", "Job has failed indexes"),
    }
    d = decide(obs(status=planned(), jobs=jobs))
    assert d.status["phase"] == "Failed" and "FailedIndexes" in d.status["message"]
    assert cond(d, "Stalled") == ("True", "ScoreFailed")


def test_score_complete_merges_then_succeeds_with_manifest_counts() -> None:
    jobs = {"plan": JobFacts("p", "Complete"), "score": JobFacts("s", "Complete")}
    # The first pass to see the score Job complete: its final progress (one failed item and
    # why) reaches status even though no pass saw the job running.
    final = progress(10, 0, items_failed=1, done=True)
    merging = decide(obs(status=planned(), jobs=jobs, progress=final))
    assert merging.create == "merge" and merging.status["phase"] == "Merging"
    assert merging.status["items"]["failed"] == 1 and merging.status["progress"] == 100
    assert merging.status["lastErrors"] == [
        {"miniBatch": 3, "item": "a.csv", "message": "boom", "attempt": 2}
    ]
    jobs["merge"] = JobFacts("m")
    assert decide(obs(status=merging.status, jobs=jobs)).status["phase"] == "Merging"
    jobs["merge"] = JobFacts("m", "Complete")
    waiting = decide(obs(status=merging.status, jobs=jobs))
    assert waiting.status["phase"] == "Merging" and "manifest" in waiting.status["message"]
    manifest = parse_merge_result(
        '{"miniBatches":{"total":10,"succeeded":10,"failed":0},'
        '"items":{"total":997,"succeeded":997,"failed":0}}'
    )
    done = decide(obs(status=merging.status, jobs=jobs, merge_result=manifest))
    assert done.status["phase"] == "Succeeded" and not done.poll
    assert done.status["items"] == {"total": 997, "succeeded": 997, "failed": 0}
    assert done.status["progress"] == 100 and done.status["completionTime"] == NOW
    assert cond(done, "Ready") == ("True", "Succeeded")
    assert cond(done, "Reconciling")[0] == "False" and cond(done, "Stalled")[0] == "False"
    assert done.events[0][:2] == ("Normal", "Succeeded")
    # Terminal is final: no Job, no event, even when the spec is cancelled afterwards.
    after = decide(
        obs(
            spec=SPEC.model_copy(update={"cancel": True}),
            status=done.status,
            jobs=jobs,
            now="later",
        )
    )
    assert (after.create, after.events, after.status["phase"]) == (None, [], "Succeeded")
    assert after.status["completionTime"] == NOW


def test_final_failed_items_over_the_threshold_fail_and_merge_errors_fail() -> None:
    jobs = {
        "plan": JobFacts("p", "Complete"),
        "score": JobFacts("s", "Complete"),
        "merge": JobFacts("m", "Complete"),
    }
    result = MergeResult(
        MiniBatchCounts(total=10, succeeded=9, failed=1),
        ItemCounts(total=1000, succeeded=900, failed=100),
    )
    d = decide(obs(status=planned(), jobs=jobs, merge_result=result))
    assert d.status["phase"] == "Failed" and cond(d, "Stalled")[1] == "ErrorThresholdExceeded"
    broken = decide(
        obs(
            status=planned(),
            jobs={**jobs, "merge": JobFacts("m", "Failed", "X", "y")},
            merge_result=MergeResult(error="missing parts 3"),
        )
    )
    assert broken.status["phase"] == "Failed" and "missing parts 3" in broken.status["message"]


def test_cancel_suspends_every_running_job_and_is_final() -> None:
    jobs = {"plan": JobFacts("p", "Complete"), "score": JobFacts("s")}
    d = decide(obs(spec=SPEC.model_copy(update={"cancel": True}), status=planned(), jobs=jobs))
    assert d.status["phase"] == "Cancelled" and d.suspend == {"score": True} and not d.poll
    assert d.events == [("Normal", "Cancelled", "cancelled: finished parts stay for resumeFrom")]
    assert cond(d, "Stalled") == ("True", "Cancelled")
    # A later pass re-asserts the suspend if it was lost, with no second Event.
    again = decide(obs(spec=SPEC.model_copy(update={"cancel": True}), status=d.status, jobs=jobs))
    assert again.suspend == {"score": True} and again.events == []


def test_invalid_spec_fails() -> None:
    d = decide(obs(spec=None, spec_error="input: field required"))
    assert d.status["phase"] == "Failed" and "field required" in d.status["message"]


RESUME = BatchJobSpec.model_validate(
    {"endpoint": "e", "input": {"uri": "s3://data/in/"}, "resumeFrom": "first"}
)
SOURCE_PLAN = PlanSummary(
    digest=PLAN, uri=OUT + "_mlkube/plan.json", mini_batches=10, items=1000, indexes=8
)


def test_resume_waits_for_a_finished_source_and_reuses_its_plan_and_output() -> None:
    missing = decide(obs(spec=RESUME, source=ResumeSource(found=False)))
    assert missing.status["phase"] == "Pending" and missing.create is None
    active = decide(obs(spec=RESUME, source=ResumeSource(True, "Running", SOURCE_PLAN, OUT)))
    assert cond(active, "Stalled") == ("True", "ResumeSourceActive") and active.create is None
    no_plan = decide(obs(spec=RESUME, source=ResumeSource(True, "Failed", None, OUT)))
    assert no_plan.status["phase"] == "Failed"
    other = BatchJobSpec.model_validate(
        {
            **RESUME.model_dump(by_alias=True, exclude_none=True),
            "output": {"uri": "s3://elsewhere/"},
        }
    )
    mismatch = decide(obs(spec=other, source=ResumeSource(True, "Failed", SOURCE_PLAN, OUT)))
    assert cond(mismatch, "Stalled")[1] == "ResumeOutputMismatch"
    source = ResumeSource(True, "Cancelled", SOURCE_PLAN, OUT)
    start = decide(obs(spec=RESUME, source=source))
    assert start.create == "plan" and start.events[0][:2] == ("Normal", "Started")
    needs_model = decide(obs(spec=RESUME, source=source, model=None))
    assert needs_model.create is None  # the work step checks parts against the model digest
    work = parse_plan_result(
        '{"digest":"sha256:w","remaining":3,"reused":7,"work":"x"}', resume=True
    )
    scored = decide(
        obs(spec=RESUME, source=source, jobs={"plan": JobFacts("p", "Complete")}, plan_result=work)
    )
    assert scored.create == "score" and scored.shape is not None
    assert (scored.shape.plan_digest, scored.shape.indexes) == (PLAN, 3)
    assert scored.shape.work == "_mlkube/work/nightly.json"
    assert scored.status["miniBatches"]["total"] == 3 and scored.status["plan"]["indexes"] == 3
    assert progress_plan(scored.status).mini_batches == 3  # type: ignore[union-attr]
    # Nothing left to run: straight to the merge.
    none_left = parse_plan_result('{"digest":"d","remaining":0,"reused":10}', resume=True)
    merge = decide(
        obs(
            spec=RESUME,
            source=source,
            jobs={"plan": JobFacts("p", "Complete")},
            plan_result=none_left,
        )
    )
    assert merge.create == "merge" and merge.status["phase"] == "Merging"


def test_resume_with_invalidated_parts_warns_parts_invalidated() -> None:
    """§6: parts of another model or settings are not reused; the resume degrades to a
    (full) rerun and says so with a Warning Event, once, when the score Job is created."""
    source = ResumeSource(True, "Failed", SOURCE_PLAN, OUT)
    work = parse_plan_result(
        '{"digest":"d","remaining":10,"reused":0,"invalidated":7}', resume=True
    )
    assert work is not None and work.invalidated == 7
    scored = decide(
        obs(spec=RESUME, source=source, jobs={"plan": JobFacts("p", "Complete")}, plan_result=work)
    )
    assert scored.create == "score"
    warning = [e for e in scored.events if e[1] == "PartsInvalidated"]
    assert warning == [
        (
            "Warning",
            "PartsInvalidated",
            "7 finished parts of first were made with another model or settings: "
            "10 of 10 mini-batches run again",
        )
    ]
    # The next pass (plan recorded in status) does not say it again.
    later = decide(
        obs(
            spec=RESUME,
            source=source,
            status=scored.status,
            jobs={"plan": JobFacts("p", "Complete"), "score": JobFacts("s")},
            plan_result=work,
        )
    )
    assert all(e[1] != "PartsInvalidated" for e in later.events)
    # An ordinary resume (nothing invalidated) has no such Event.
    plain = parse_plan_result('{"digest":"d","remaining":3,"reused":7}', resume=True)
    assert plain is not None and plain.invalidated == 0
    quiet = decide(
        obs(spec=RESUME, source=source, jobs={"plan": JobFacts("p", "Complete")}, plan_result=plain)
    )
    assert quiet.create == "score" and all(e[1] != "PartsInvalidated" for e in quiet.events)


def test_facts_parsing() -> None:
    job = {
        "metadata": {"name": "j"},
        "spec": {"suspend": True},
        "status": {
            "conditions": [
                {"type": "Suspended", "status": "True"},
                {"type": "Failed", "status": "True", "reason": "R", "message": "M"},
            ]
        },
    }
    assert job_facts(job) == JobFacts("j", "Failed", "R", "M", suspended=True)
    assert job_facts({"metadata": {"name": "k"}}) == JobFacts("k")
    # FailJob: FailureTarget at once, Failed only after the other pods terminated.
    target = {
        "type": "FailureTarget",
        "status": "True",
        "reason": "PodFailurePolicy",
        "message": "M",
    }
    failing = {"metadata": {"name": "f"}, "status": {"conditions": [target]}}
    assert job_facts(failing) == JobFacts("f", "Failed", "PodFailurePolicy", "M")
    plan = parse_plan_result('log\n{"digest":"d","miniBatches":2,"items":5,"bytes":1}')
    assert plan == PlanResult(digest="d", mini_batches=2, items=5)
    assert parse_plan_result(None) is None
    crash = parse_plan_result("Traceback ...\nMemoryError")
    assert crash is not None and crash.error is not None and "MemoryError" in crash.error
    bad = parse_plan_result('{"digest":"d","miniBatches":-1,"items":5}')
    assert bad is not None and bad.error is not None
    assert parse_plan_result('{"error":"PlanError: x"}') == PlanResult(error="PlanError: x")
    assert parse_merge_result(b"x" * 20000) is None
    assert parse_merge_result('{"items":{}}').error is not None  # type: ignore[union-attr]


def test_an_unreadable_output_counts_mini_batches_from_the_indexed_job() -> None:
    assert index_set("0-2,5") == (0, 1, 2, 5) and index_set("") == () and index_set("x") == ()
    assert index_set("3-1") == () and index_set(None) == ()
    score = job_facts(
        {"metadata": {"name": "s"}, "status": {"completedIndexes": "0,2", "failedIndexes": "3"}}
    )
    jobs = {"plan": JobFacts("p", "Complete"), "score": score}
    # 10 mini-batches over 8 indexes: shards 0 and 1 hold 2, the others 1.
    d = decide(obs(status=planned(), jobs=jobs, store_unreadable=True))
    assert d.status["miniBatches"]["succeeded"] == 3 and d.status["miniBatches"]["failed"] == 1
    assert d.status["progress"] == 40 and d.status["phase"] == "Running"
    # With the store readable but no file yet, nothing is guessed.
    assert decide(obs(status=planned(), jobs=jobs)).status["progress"] == 0
