"""Step Jobs read into JobAttempts: step, attempt, state, message and end time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlkube.reconcile.pipeline_jobs import job_attempt, job_attempts
from mlkube.reconcile.pipeline_plan import JobAttempt


def job(name: str = "r-train-a2", *conditions: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"mlkube.dev/pipeline-step": "train"},
            "annotations": {"mlkube.dev/attempt": "2"},
            **meta,
        },
        "status": {"conditions": list(conditions)},
    }


def cond(type_: str, at: str = "2026-11-30T09:00:05Z", **more: Any) -> dict[str, Any]:
    return {"type": type_, "status": "True", "lastTransitionTime": at, **more}


AT = dt.datetime(2026, 11, 30, 9, 0, 5, tzinfo=dt.UTC)


def test_running_complete_failed() -> None:
    assert job_attempt(job()) == JobAttempt("train", 2, "r-train-a2", "Active")
    assert job_attempt(job("r-train-a2", cond("Complete"))) == JobAttempt(
        "train", 2, "r-train-a2", "Complete", "", AT
    )
    failed = job_attempt(job("r-train-a2", cond("Failed", message="DeadlineExceeded")))
    assert failed == JobAttempt("train", 2, "r-train-a2", "Failed", "DeadlineExceeded", AT)


def test_failure_target_ends_the_attempt_at_its_first_condition() -> None:
    early = cond("FailureTarget", "2026-11-30T09:00:05Z", reason="BackoffLimitExceeded")
    late = cond("Failed", "2026-11-30T09:00:40Z", reason="BackoffLimitExceeded")
    attempt = job_attempt(job("j", early, late))
    assert attempt is not None and attempt.state == "Failed" and attempt.finished_at == AT
    assert attempt.message == "BackoffLimitExceeded"


def test_a_job_being_deleted_unfinished_is_a_failed_attempt() -> None:
    attempt = job_attempt(job("j", deletionTimestamp="2026-11-30T09:00:05Z"))
    assert attempt == JobAttempt("train", 2, "j", "Failed", "Job j was deleted", AT)


def test_foreign_jobs_are_left_out() -> None:
    unlabelled = {"metadata": {"name": "x", "annotations": {"mlkube.dev/attempt": "1"}}}
    bad_attempt = job()
    bad_attempt["metadata"]["annotations"] = {"mlkube.dev/attempt": "zero"}
    assert job_attempts([unlabelled, bad_attempt, job()]) == [
        JobAttempt("train", 2, "r-train-a2", "Active")
    ]
