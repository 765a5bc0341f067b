"""The run planner on examples: order, parallelism, retries, skips, failFast, cancel, phase."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mlkube.api.pipeline import PipelineSpec
from mlkube.reconcile.conditions import get_condition
from mlkube.reconcile.pipeline_dag import DagError
from mlkube.reconcile.pipeline_plan import JobAttempt, RunPlan, StepStart, next_actions
from support.pipeline_specs import consumer, container, pipeline

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


def plan(
    spec: PipelineSpec,
    steps: dict[str, str | dict[str, Any]] | None = None,
    jobs: list[JobAttempt] | None = None,
    now: dt.datetime = T0,
    **kw: Any,
) -> RunPlan:
    """`steps`: name → phase, or name → a status.steps[] entry (without its name)."""
    entries = [
        {"name": n, **({"phase": v} if isinstance(v, str) else v)} for n, v in (steps or {}).items()
    ]
    kw.setdefault("parameters", {})
    return next_actions(spec, {"steps": entries}, jobs or [], now, **kw)


def job(step: str, attempt: int, state: str, ended: dt.datetime | None = None) -> JobAttempt:
    return JobAttempt(step, attempt, f"r-{step}-a{attempt}", state, "boom", ended)  # type: ignore[arg-type]


DIAMOND = pipeline(
    container("a"), container("b", "a"), container("c", "a"), container("d", "b", "c")
)


def test_a_new_run_starts_its_roots() -> None:
    p = plan(DIAMOND)
    assert p.start == (StepStart("a", 1),)
    assert (p.phase, p.progress) == ("Running", "0/4")
    assert p.skip == {} and p.fail == {} and p.delete_jobs == ()


def test_independent_steps_start_together_in_name_order() -> None:
    p = plan(DIAMOND, {"a": "Succeeded"})
    assert [s.step for s in p.start] == ["b", "c"]


def test_parallelism_bounds_container_steps_only() -> None:
    spec = pipeline(
        *(container(n) for n in "fedcba"),
        {"name": "check", "type": "evaluate", "evaluate": {"metrics": []}},
        parallelism=2,
    )
    assert [s.step for s in plan(spec).start] == ["a", "b", "check"]
    running = plan(spec, {"a": "Running"}, [job("a", 1, "Active")])
    assert [s.step for s in running.start] == ["b", "check"]
    assert running.running == ("a",)
    assert plan(spec, {"a": "Running", "b": "Running"},
                [job("a", 1, "Active"), job("b", 1, "Active")]).start[0].builtin  # fmt: skip


def test_a_complete_job_is_recorded_before_dependents_start() -> None:
    p = plan(DIAMOND, {"a": "Running"}, [job("a", 1, "Complete")])
    assert p.complete == ("a",) and p.start == ()
    assert p.phase == "Running"


def test_an_observed_job_wins_over_a_stale_status() -> None:
    # The status write of the pass that created the Job was lost (operator restarted).
    p = plan(DIAMOND, {}, [job("a", 1, "Active")])
    assert p.start == () and p.running == ("a",)


def retrying(limit: int = 2, **backoff: Any) -> PipelineSpec:
    retry = {"limit": limit, "backoff": {"duration": "10s", "factor": 2, **backoff}}
    return pipeline(container("a", retry=retry))


def test_a_failed_attempt_is_retried_after_the_backoff() -> None:
    spec = retrying()
    first = [job("a", 1, "Failed", T0)]
    waiting = plan(spec, {"a": "Running"}, first, now=T0 + 3 * S)
    assert waiting.start == ()
    assert [(r.step, r.attempt, r.at) for r in waiting.retry] == [("a", 2, T0 + 10 * S)]
    assert waiting.requeue_after == 7.0
    assert waiting.phases["a"] == "Pending" and waiting.phase == "Running"
    due = plan(spec, {"a": "Running"}, first, now=T0 + 10 * S)
    assert due.start == (StepStart("a", 2),)
    second = [*first, job("a", 2, "Failed", T0 + 60 * S)]
    later = plan(spec, {"a": {"phase": "Running", "attempts": 2}}, second, now=T0 + 61 * S)
    assert later.retry[0].at == T0 + 80 * S  # 10s * 2^(2-1)
    third = [*second, job("a", 3, "Failed", T0 + 200 * S)]
    done = plan(spec, {"a": {"phase": "Running", "attempts": 3}}, third, now=T0 + 201 * S)
    assert done.fail == {"a": "boom (after 3 attempts)"}
    assert done.phase == "Failed" and done.message == "step a failed: boom (after 3 attempts)"


def test_backoff_is_capped_and_the_recorded_time_wins() -> None:
    spec = retrying(limit=5, factor=10, maxDuration="1m")
    jobs = [job("a", n, "Failed", T0) for n in (1, 2, 3)]
    p = plan(spec, {"a": {"phase": "Running", "attempts": 3}}, jobs, now=T0)
    assert p.retry[0].at == T0 + 60 * S  # 10s * 10^2 capped at 1m
    recorded = {"phase": "Pending", "attempts": 3, "nextAttemptTime": "2026-11-30T09:00:30Z"}
    assert plan(spec, {"a": recorded}, jobs, now=T0).retry[0].at == T0 + 30 * S


def test_a_job_that_vanished_is_a_failed_attempt() -> None:
    gone = {"phase": "Running", "attempts": 1, "job": "r-a-a1"}
    p = plan(retrying(limit=0), {"a": gone})
    assert p.fail == {"a": "Job r-a-a1 is gone"}


def test_fail_fast_cancels_running_steps_and_skips_the_rest() -> None:
    spec = pipeline(container("a"), container("b"), container("c"), container("d", "c"))
    jobs = [job("a", 1, "Failed", T0), job("b", 1, "Active"), job("c", 1, "Complete")]
    p = plan(spec, {"a": "Running", "b": "Running", "c": "Running"}, jobs)
    assert p.fail == {"a": "boom"}
    assert p.cancel == {"b": "cancelled: step a failed (failFast)"}
    assert p.skip == {"d": "skipped: step a failed (failFast)"}
    assert p.delete_jobs == ("r-b-a1",)
    assert p.complete == ("c",)  # it did succeed: its outputs are recorded
    assert p.start == () and p.phase == "Running"  # until c is recorded
    after = plan(spec, {**{k: v for k, v in p.phases.items()}, "c": "Succeeded"}, jobs)
    assert after.phase == "Failed" and after.message == "step a failed"
    assert get_condition(after.conditions, "Stalled")["status"] == "True"  # type: ignore[index]


def test_without_fail_fast_other_branches_go_on() -> None:
    spec = pipeline(container("a"), container("b", "a"), container("c"), fail_fast=False)
    p = plan(spec, {"a": "Running"}, [job("a", 1, "Failed", T0)])
    assert p.skip == {"b": "upstream step a failed"}
    assert p.start == (StepStart("c", 1),)
    end = plan(spec, {"a": "Failed", "b": "Skipped", "c": "Succeeded"})
    assert end.phase == "Failed"


def test_continue_on_failure_keeps_the_run_going_and_succeeding() -> None:
    spec = pipeline(
        container("a", continueOnFailure=True), container("b", "a"), container("c", "b"),
        container("d"),
    )  # fmt: skip
    p = plan(spec, {"a": "Running"}, [job("a", 1, "Failed", T0)])
    assert p.skip == {"b": "upstream step a failed", "c": "upstream step b was skipped"}
    assert p.start == (StepStart("d", 1),) and p.cancel == {}
    end = plan(spec, {**p.phases, "d": "Succeeded"})
    assert end.phase == "Succeeded"
    assert (
        end.message
        == "1/4 steps succeeded (0 from the cache, 2 skipped, 1 failed with continueOnFailure)"
    )


def test_when_false_skips_the_step_and_its_consumers_only() -> None:
    spec = pipeline(
        container("gate", when="parameters.deploy", outputs=[{"name": "out"}]),
        container("after", "gate"),
        consumer("reader", "gate", outputs=[{"name": "out"}]),
        consumer("reader2", "reader"),
    )
    p = plan(spec, parameters={"deploy": False})
    assert p.skip == {
        "gate": "when 'parameters.deploy' is false",
        "reader": "needs outputs of step gate, which was skipped",
        "reader2": "needs outputs of step reader, which was skipped",
    }
    assert [s.step for s in p.start] == ["after"]
    nxt = plan(spec, {"gate": "Skipped"}, parameters={"deploy": False})
    assert nxt.skip == {  # the same decision from the status alone
        "reader": "needs outputs of step gate, which was skipped",
        "reader2": "needs outputs of step reader, which was skipped",
    }
    assert [s.step for s in nxt.start] == ["after"]
    done = plan(spec, {"gate": "Skipped", "reader": "Skipped", "reader2": "Skipped",
                       "after": "Succeeded"})  # fmt: skip
    assert done.phase == "Succeeded" and done.message.endswith("3 skipped)")


def test_when_sees_upstream_metrics_and_a_bad_condition_fails_the_step() -> None:
    spec = pipeline(
        container("train", outputs=[{"name": "m", "type": "metrics"}]),
        container("ship", "train", when="steps.train.metrics.auc > parameters.min"),
        container("oops", "train", when="steps.train.metrics.nope > 1"),
        fail_fast=False,
    )
    train = {"phase": "Succeeded", "metrics": {"auc": 0.9}}
    p = plan(spec, {"train": train}, parameters={"min": 0.8})
    assert [s.step for s in p.start] == ["ship"]
    assert p.fail == {
        "oops": "when 'steps.train.metrics.nope > 1' failed: no such member in mapping: 'nope'"
    }
    assert p.phase == "Running"  # ship is starting (no failFast)
    low = plan(spec, {"train": train}, parameters={"min": 0.95})
    assert "ship" in low.skip


def test_cancel_deletes_jobs_and_cancels_every_unfinished_step() -> None:
    jobs = [job("b", 1, "Active"), job("c", 1, "Active")]
    p = plan(DIAMOND, {"a": "Succeeded", "b": "Running", "c": "Running"}, jobs, cancel=True)
    assert p.cancel == {n: "the run was cancelled" for n in "bcd"}
    assert p.delete_jobs == ("r-b-a1", "r-c-a1") and p.start == ()
    assert p.phase == "Cancelled"
    assert get_condition(p.conditions, "Stalled")["reason"] == "Cancelled"  # type: ignore[index]


def test_success_sets_ready_and_counts_cache_hits() -> None:
    hit = {"phase": "Succeeded", "cache": {"hit": True}}
    p = plan(DIAMOND, {"a": hit, "b": hit, "c": "Succeeded", "d": "Succeeded"}, generation=3)
    assert p.phase == "Succeeded"
    assert p.message == "4/4 steps succeeded (2 from the cache)"
    ready = get_condition(p.conditions, "Ready")
    assert ready is not None and ready["status"] == "True" and ready["observedGeneration"] == 3
    assert get_condition(p.conditions, "Reconciling")["status"] == "False"  # type: ignore[index]


def test_builtin_steps_are_driven_while_running() -> None:
    spec = pipeline(
        container("train", outputs=[{"name": "m", "type": "metrics"}]),
        {"name": "gate", "type": "evaluate",
         "evaluate": {"metrics": [{"name": "auc", "from": {"step": "train", "output": "m"},
                                   "min": 0.8}]}},
    )  # fmt: skip
    p = plan(spec, {"train": "Succeeded"})
    assert p.start == (StepStart("gate", 1, builtin=True),)
    assert plan(spec, {"train": "Succeeded", "gate": "Running"}).drive == ("gate",)


def test_a_cyclic_snapshot_is_refused() -> None:
    spec = pipeline(container("a"))
    broken = spec.model_copy(
        update={"steps": [spec.steps[0].model_copy(update={"depends_on": ["a"]})]}
    )
    with pytest.raises(DagError, match="depends on itself"):
        plan(broken)
