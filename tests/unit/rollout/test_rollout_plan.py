"""The rollout state machine with an injected clock: first deploy, a healthy rollout through
every step kind to Promoted, aborts (analysis failure, provider errors, request) with the
record, Events and the scale-down, inconclusive pauses, background analysis, each
request (once per id, other revisions ignored), a revision change mid-rollout, tick delays."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.rollout_status import RolloutRequest, RolloutStatus
from mlkube.reconcile.rollout_analysis import RawMeasurement
from mlkube.reconcile.rollout_plan import (
    Observations,
    RolloutPlan,
    advance,
    due_metrics,
    revision,
)
from mlkube.reconcile.rollout_split import running_split
from support.rollout_ticks import ERRORS, LATENCY, T0, at, spec
from support.rollouts import endpoint_spec

GOOD = RawMeasurement(candidate=0.001, stable=0.001, candidate_samples=500, stable_samples=500)
BASE = RawMeasurement(baseline=True)
BAD = RawMeasurement(candidate=0.12, candidate_samples=500)
MID = RawMeasurement(candidate=0.03, candidate_samples=500)


def tick(
    endpoint: OnlineEndpointSpec, previous: RolloutStatus | None, now: dt.datetime, **seen: Any
) -> RolloutPlan:
    seen.setdefault("applied_traffic", {"blue": 100})
    seen.setdefault("candidate_available", True)
    return advance(endpoint, previous, Observations(**seen), now)


def reasons(plan: RolloutPlan) -> list[str]:
    return [e.reason for e in plan.events]


def request(action: str, status: RolloutStatus, id_: str = "r1") -> RolloutRequest:
    return RolloutRequest.model_validate({"action": action, "id": id_, "revision": status.revision})


def at_analysis(endpoint: OnlineEndpointSpec | None = None) -> RolloutStatus:
    """A rollout that reached step 2 (analysis errors, p99) at t=1."""
    endpoint = endpoint or spec()
    started = tick(endpoint, None, T0).rollout
    plan = tick(endpoint, started, at(1), split_applied=True)
    assert plan.rollout is not None and plan.rollout.step_index == 1
    assert plan.fresh == ("errors", "p99") and due_metrics(plan.rollout, at(1)) == ()
    return plan.rollout


def test_first_deploy_promotes_at_once() -> None:
    plan = tick(spec(), None, T0, applied_traffic={})
    assert plan.rollout is not None
    assert (plan.rollout.phase, plan.rollout.reason, plan.rollout.weight) == (
        "Promoted",
        "InitialDeploy",
        100,
    )
    assert (plan.events, plan.delay) == ((), None)
    assert running_split(spec(), plan.rollout, T0).traffic == {"green": 100}


def test_a_healthy_rollout_walks_every_step_kind_to_promoted() -> None:
    endpoint = spec()
    waiting = tick(endpoint, None, T0, candidate_available=False)
    status = waiting.rollout
    assert status is not None and (status.phase, status.reason) == (
        "Progressing",
        "WaitingForCandidate",
    )
    assert reasons(waiting) == ["RolloutStarted"] and status.start_traffic == {"blue": 100}
    assert status.revision == revision(endpoint)
    # step 1 setWeight 10: entered once the candidate is available, complete once served
    plan = tick(endpoint, status, at(1))
    status = plan.rollout
    assert status is not None and (status.step_index, status.weight, status.reason) == (
        0,
        10,
        "SetWeight",
    )
    assert reasons(plan) == ["RolloutStep"] and "routers" in status.message
    assert tick(endpoint, status, at(2)).rollout == status.model_copy(
        update={"message": status.message}
    )
    plan = tick(endpoint, status, at(2), split_applied=True)
    status = plan.rollout
    assert status is not None and (status.step_index, status.reason) == (1, "StepAnalysis")
    assert [m.name for m in status.metrics] == ["errors", "p99"]
    assert plan.fresh == ("errors", "p99") and plan.delay == 5.0  # windows start now
    # analysis: errors every 10 s (count 2), p99 at 20 s (count 1)
    assert due_metrics(status, at(11)) == () and due_metrics(status, at(12)) == ("errors",)
    status = tick(endpoint, status, at(12), measurements={"errors": GOOD}).rollout
    assert status is not None and status.metrics[0].count == 1 and status.step_index == 1
    assert "errors 1/2" in status.message
    assert due_metrics(status, at(22)) == ("errors", "p99")
    plan = tick(endpoint, status, at(22), measurements={"errors": GOOD, "p99": GOOD})
    status = plan.rollout
    assert status is not None and (status.step_index, status.weight, status.mirror) == (2, 0, 50)
    assert status.metrics == []
    # setMirror 50 served -> timed pause 2m
    plan = tick(endpoint, status, at(23), split_applied=True)
    status = plan.rollout
    assert status is not None and (status.step_index, status.phase, status.reason) == (
        3,
        "Progressing",
        "Pause",
    )
    assert plan.delay == 5.0 and tick(endpoint, status, at(141)).delay == pytest.approx(2.0)
    # pause over -> setWeight 50 -> served -> untimed pause: Paused until promote
    status = tick(endpoint, status, at(143)).rollout
    assert status is not None and (status.step_index, status.weight) == (4, 50)
    plan = tick(endpoint, status, at(144), split_applied=True)
    status = plan.rollout
    assert status is not None and (status.phase, status.step_index) == ("Paused", 5)
    assert reasons(plan) == ["RolloutStep", "RolloutPaused"]
    assert tick(endpoint, status, at(900)).rollout == status
    plan = tick(endpoint, status, at(901), request=request("promote", status))
    status = plan.rollout
    assert status is not None and (status.phase, status.reason, status.weight) == (
        "Promoted",
        "Promoted",
        100,
    )
    assert status.last_request == "r1" and reasons(plan) == ["RolloutPromoted"]
    assert plan.delay is None
    assert running_split(endpoint, status, at(901)).traffic == {"green": 100}


def test_analysis_failure_aborts_with_the_record_then_scales_down() -> None:
    endpoint = spec()
    status = at_analysis(endpoint)
    plan = tick(endpoint, status, at(12), measurements={"errors": BAD})
    aborted = plan.rollout
    assert aborted is not None and (aborted.phase, aborted.reason, aborted.weight) == (
        "Aborted",
        "AnalysisFailed",
        0,
    )
    message = (
        "rollout aborted: metric errors measured 0.12, condition result > 0.05 (failureLimit 0);"
        " spec wants {green: 100}, running {blue: 100}"
    )
    assert aborted.message == message and reasons(plan) == ["RolloutAborted"]
    assert plan.events[0].type == "Warning"
    assert aborted.abort is not None
    assert (aborted.abort.metric, aborted.abort.value, aborted.abort.condition) == (
        "errors",
        0.12,
        "result > 0.05",
    )
    assert plan.delay == 600.0 and due_metrics(aborted, at(100)) == ()
    assert running_split(endpoint, aborted, at(12)).traffic == {"blue": 100, "green": 0}
    later = tick(endpoint, aborted, at(611))
    assert later.rollout == aborted and later.delay == pytest.approx(1.0)
    done = tick(endpoint, aborted, at(612))
    assert done.rollout is not None and done.rollout.scaled_down and done.delay is None
    assert running_split(endpoint, done.rollout, at(612)).replicas == {"green": 0}


def test_provider_errors_abort_with_the_error() -> None:
    endpoint = spec(
        metrics=[{**ERRORS, "consecutiveErrorLimit": 0}],
        steps=[{"analysis": {"metrics": ["errors"]}}],
    )
    status = tick(endpoint, None, T0).rollout
    assert status is not None and status.reason == "StepAnalysis"
    plan = tick(
        endpoint, status, at(10), measurements={"errors": RawMeasurement(error="503 from router")}
    )
    assert plan.rollout is not None and plan.rollout.phase == "Aborted"
    assert (
        "failed to measure 1 times in a row (consecutiveErrorLimit 0): 503 from router"
        in plan.rollout.message
    )


def test_a_condition_that_does_not_compile_aborts_before_the_candidate_gets_traffic() -> None:
    """The API server cannot check CEL held in a string: without this the candidate served
    its first step's weight, unmeasured, for consecutiveErrorLimit + 1 intervals."""
    endpoint = spec(metrics=[{**ERRORS, "failureCondition": "result >"}, LATENCY])
    plan = tick(endpoint, None, T0)
    aborted = plan.rollout
    assert aborted is not None and aborted.phase == "Aborted"
    assert aborted.reason == "InvalidCondition"
    assert aborted.abort is not None and aborted.abort.metric == "errors"
    assert aborted.abort.condition == "result >" and "does not compile" in aborted.message
    assert reasons(plan) == ["RolloutStarted", "RolloutAborted"]
    assert running_split(endpoint, aborted, T0).traffic == {"blue": 100, "green": 0}
    retried = tick(endpoint, aborted, at(1), request=request("retry", aborted)).rollout
    assert retried is not None and retried.phase == "Aborted"  # still does not compile


def test_inconclusive_step_pauses_and_promote_continues() -> None:
    endpoint = spec()
    plan = tick(endpoint, at_analysis(endpoint), at(12), measurements={"errors": MID})
    paused = plan.rollout
    assert paused is not None and (paused.phase, paused.reason) == ("Paused", "Inconclusive")
    assert "neither result <= 0.01 nor result > 0.05" in paused.message and reasons(plan) == [
        "RolloutPaused"
    ]
    assert due_metrics(paused, at(22)) == ("p99",)  # the other metric keeps measuring
    resumed = tick(endpoint, paused, at(30), request=request("promote", paused)).rollout
    assert resumed is not None and (resumed.phase, resumed.step_index, resumed.mirror) == (
        "Progressing",
        2,
        50,
    )


def test_abort_request_and_retry() -> None:
    endpoint = spec()
    status = at_analysis(endpoint)
    plan = tick(endpoint, status, at(5), request=request("abort", status))
    aborted = plan.rollout
    assert aborted is not None and (aborted.phase, aborted.reason) == ("Aborted", "ManualAbort")
    assert aborted.message == (
        "rollout aborted: abort requested (r1); spec wants {green: 100}, running {blue: 100}"
    )
    again = tick(endpoint, aborted, at(6), request=request("abort", status))  # same id: once
    assert again.rollout == aborted and again.events == ()
    retried = tick(
        endpoint, aborted, at(7), request=request("retry", aborted, "r2"), candidate_available=False
    )
    status = retried.rollout
    assert status is not None and (status.phase, status.reason, status.step_index) == (
        "Progressing",
        "WaitingForCandidate",
        0,
    )
    assert (
        status.revision == aborted.revision and status.last_request == "r2" and status.abort is None
    )
    assert reasons(retried) == ["RolloutStarted"]


def test_promote_full_and_ignored_requests() -> None:
    endpoint = spec()
    status = at_analysis(endpoint)
    other = RolloutRequest(action="promote-full", id="x", revision="sha256:old")
    plan = tick(endpoint, status, at(2), request=other)
    assert (
        plan.rollout is not None
        and plan.rollout.phase == "Progressing"
        and plan.rollout.last_request == "x"
    )
    assert reasons(plan) == ["RolloutRequestIgnored"] and plan.events[0].type == "Warning"
    retry = tick(endpoint, status, at(2), request=request("retry", status))
    assert (
        retry.rollout is not None
        and retry.rollout.step_index == 1
        and reasons(retry) == ["RolloutRequestIgnored"]
    )
    full = tick(endpoint, status, at(3), request=request("promote-full", status, "r3")).rollout
    assert full is not None and (full.phase, full.reason) == ("Promoted", "PromotedFull")
    waiting = tick(endpoint, None, T0, candidate_available=False).rollout
    assert waiting is not None
    early = tick(
        endpoint, waiting, at(1), candidate_available=False, request=request("promote", waiting)
    )
    assert early.rollout is not None and early.rollout.reason == "WaitingForCandidate"
    assert "waiting for the candidate" in early.events[0].message


def test_promote_skips_the_current_step() -> None:
    endpoint = spec()
    status = at_analysis(endpoint)
    skipped = tick(endpoint, status, at(2), request=request("promote", status)).rollout
    assert skipped is not None and (skipped.step_index, skipped.mirror, skipped.metrics) == (
        2,
        50,
        [],
    )


def test_background_analysis_from_its_starting_step() -> None:
    live = {**ERRORS, "name": "live", "count": 0}
    endpoint = spec(
        backgroundAnalysis={"metrics": ["live"], "startingStep": 1},
        metrics=[ERRORS, LATENCY, live],
    )
    first = tick(endpoint, None, T0).rollout
    assert first is not None and first.step_index == 0 and first.metrics == []
    plan = tick(endpoint, first, at(1), split_applied=True)
    status = plan.rollout
    assert status is not None and [(m.name, m.background) for m in status.metrics] == [
        ("errors", False), ("p99", False), ("live", True),
    ]  # fmt: skip
    assert plan.fresh == ("errors", "live", "p99")
    assert due_metrics(status, at(11)) == ("errors", "live")
    both = {"errors": GOOD, "live": GOOD}
    status = tick(endpoint, status, at(11), measurements=both).rollout
    assert status is not None and [m.count for m in status.metrics] == [1, 0, 1]
    status = tick(endpoint, status, at(21), measurements={**both, "p99": GOOD}).rollout
    assert status is not None and status.step_index == 2
    assert [(m.name, m.background, m.phase) for m in status.metrics] == [("live", True, "Running")]
    # background inconclusive pauses; promote resumes the same step with the metric afresh
    paused = tick(endpoint, status, at(31), measurements={"live": MID}).rollout
    assert paused is not None and (paused.phase, paused.reason) == ("Paused", "Inconclusive")
    resumed = tick(endpoint, paused, at(32), request=request("promote", paused)).rollout
    assert resumed is not None and (resumed.phase, resumed.step_index) == ("Progressing", 2)
    assert resumed.metrics[0].phase == "Running" and resumed.metrics[0].count == 0
    # background failure aborts whatever the step
    failed = tick(endpoint, resumed, at(43), measurements={"live": BAD}).rollout
    assert failed is not None and failed.phase == "Aborted" and failed.abort is not None
    assert failed.abort.metric == "live"


def test_a_timed_pause_resumed_after_a_background_pause_still_ends() -> None:
    live = {**ERRORS, "name": "live", "count": 0}
    endpoint = spec(
        steps=[{"pause": {"duration": "1m"}}, {"setWeight": 20}],
        backgroundAnalysis={"metrics": ["live"]},
        metrics=[ERRORS, live],
    )
    status = tick(endpoint, None, T0).rollout
    assert status is not None and (status.reason, status.phase) == ("Pause", "Progressing")
    paused = tick(endpoint, status, at(10), measurements={"live": MID}).rollout
    assert paused is not None and paused.phase == "Paused"
    plan = tick(endpoint, paused, at(20), request=request("promote", paused))
    resumed = plan.rollout
    assert resumed is not None and (resumed.phase, resumed.reason, resumed.step_index) == (
        "Progressing", "Pause", 0,
    )  # fmt: skip
    assert plan.events[0].message == "step 1/2: pause 1m, resumed by promote"
    after = tick(endpoint, resumed, at(60)).rollout
    assert after is not None and (after.step_index, after.weight) == (1, 20)


def test_promote_full_after_an_abort_clears_the_abort() -> None:
    endpoint = spec()
    status = at_analysis(endpoint)
    aborted = tick(endpoint, status, at(12), measurements={"errors": BAD}).rollout
    assert aborted is not None and aborted.abort is not None
    full = tick(endpoint, aborted, at(13), request=request("promote-full", aborted)).rollout
    assert full is not None and (full.phase, full.abort, full.scaled_down) == (
        "Promoted",
        None,
        False,
    )
    assert running_split(endpoint, full, at(9999)).replicas == {}


def test_one_measurement_feeds_a_step_and_a_background_metric_of_the_same_name() -> None:
    endpoint = spec(backgroundAnalysis={"metrics": ["errors"]})
    status = tick(endpoint, None, T0, split_applied=True).rollout
    plan = tick(endpoint, status, at(1), split_applied=True)
    assert plan.fresh == ("errors", "p99")  # the background errors started at step 1, kept
    status = plan.rollout
    assert status is not None and due_metrics(status, at(11)) == ("errors",)
    status = tick(endpoint, status, at(11), measurements={"errors": GOOD}).rollout
    assert status is not None and [(m.background, m.count) for m in status.metrics] == [
        (True, 1), (False, 1), (False, 0),
    ]  # fmt: skip


def test_a_revision_change_mid_rollout_starts_again_from_the_running_split() -> None:
    status = at_analysis()
    changed = spec(model="credit-risk-v5")
    assert revision(changed) != status.revision
    plan = tick(
        changed, status, at(5), applied_traffic={"blue": 90, "green": 10}, split_applied=True
    )
    fresh = plan.rollout
    assert fresh is not None and fresh.revision == revision(changed)
    assert reasons(plan) == ["RolloutStarted", "RolloutStep"]
    assert (fresh.step_index, fresh.weight, fresh.start_traffic) == (0, 10, {"blue": 100})
    assert "routers" in fresh.message  # what the routers served belonged to the old rollout
    stale = tick(
        changed,
        fresh,
        at(6),
        request=RolloutRequest(action="abort", id="y", revision=status.revision),
    )
    assert stale.rollout is not None and stale.rollout.phase == "Progressing"


def test_revision_covers_what_the_rollout_rolls() -> None:
    base = revision(spec())
    assert base.startswith("sha256:") and len(base) == 71
    assert revision(spec()) == base
    assert revision(spec(abortScaleDownDelay="30s")) != base
    assert revision(spec(traffic={"green": 50, "blue": 50})) != base
    assert revision(spec(model="credit-risk-v5")) != base
    assert revision(spec(steps=[{"setWeight": 20}])) != base
    stable_model = spec()
    stable_model.deployments[0].model = "credit-risk-v9"
    assert revision(stable_model) == base


def test_a_served_zero_weight_step_completes_at_once_and_no_rollout_is_none() -> None:
    endpoint = spec(steps=[{"setWeight": 0}])
    plan = tick(endpoint, None, T0)
    assert plan.rollout is not None and plan.rollout.phase == "Progressing"
    plan = tick(endpoint, plan.rollout, at(1), split_applied=True)
    assert plan.rollout is not None and plan.rollout.phase == "Promoted"
    assert reasons(plan) == ["RolloutPromoted"]
    plain = endpoint.model_copy(update={"rollout": None})
    assert advance(plain, plan.rollout, Observations(), T0) == RolloutPlan(None)


TICKS = st.lists(
    st.fixed_dictionaries(
        {
            "dt": st.floats(0.1, 40),
            "available": st.booleans(),
            "applied": st.booleans(),
            "raw": st.sampled_from(
                [GOOD, BAD, MID, RawMeasurement(error="down"), RawMeasurement()]
            ),
            "action": st.sampled_from(
                [None, None, None, "promote", "promote-full", "abort", "retry"]
            ),
        }
    ),
    max_size=30,
)


@settings(max_examples=120, deadline=None)
@given(ticks=TICKS, background=st.booleans())
def test_any_tick_sequence_keeps_the_invariants(
    ticks: list[dict[str, Any]], background: bool
) -> None:
    """Whatever happens: the status validates against the API model, the split sums to 100 with
    the candidate never live and mirrored, a terminal phase stays put without a request, and a
    Failed metric never passes."""
    endpoint = spec(backgroundAnalysis={"metrics": ["errors"]}) if background else spec()
    status: RolloutStatus | None = None
    now = T0
    for n, step in enumerate(ticks):
        now += dt.timedelta(seconds=step["dt"])
        req = None
        if step["action"] and status is not None:
            req = request(step["action"], status, f"id{n}")
        due = due_metrics(status, now)
        plan = tick(
            endpoint, status, now, candidate_available=step["available"],
            split_applied=step["applied"], measurements={m: step["raw"] for m in due}, request=req,
        )  # fmt: skip
        new = plan.rollout
        assert new is not None
        assert RolloutStatus.model_validate(new.model_dump(mode="json")) == new
        split = running_split(endpoint, new, now)
        assert sum(split.traffic.values()) == 100
        assert not (split.traffic.get("green", 0) > 0 and split.mirror.get("green", 0) > 0)
        if status is not None and req is None and status.phase in ("Promoted", "Aborted"):
            assert new.phase == status.phase
        if status is not None and req is None and new.phase in ("Progressing", "Paused"):
            before = {(m.name, m.background): m.phase for m in status.metrics}
            for m in new.metrics:
                if before.get((m.name, m.background)) == "Failed":
                    assert m.phase == "Failed"
        if new.phase == "Aborted":
            assert new.weight == 0 and new.mirror == 0 and split.traffic["green"] == 0
        assert plan.delay is None or plan.delay >= 0.2
        status = new


def drive(endpoint: OnlineEndpointSpec, raw: RawMeasurement, seconds: int) -> list[RolloutPlan]:
    """Tick every second with the split served, as the rollout loop does: take the baseline of
    the metrics that started (`fresh`), measure what is due with `raw` (a due metric without a
    window gets a baseline answer)."""
    plans, status, windows = [], None, set()
    for n in range(seconds):
        now = at(n)
        due = due_metrics(status, now)
        measured = {m: raw if m in windows else BASE for m in due}
        windows |= set(due)
        plan = tick(endpoint, status, now, split_applied=True, measurements=measured)
        windows |= set(plan.fresh)
        plans.append(plan)
        status = plan.rollout
        if status is not None and status.phase in ("Promoted", "Aborted"):
            break
    return plans


def test_the_docs_example_promotes_itself_when_healthy_and_aborts_when_broken() -> None:
    endpoint = OnlineEndpointSpec.model_validate(endpoint_spec())
    healthy = drive(endpoint, GOOD, 600)
    last = healthy[-1].rollout
    assert last is not None and (last.phase, last.reason) == ("Promoted", "Promoted")
    steps = [e.message for p in healthy for e in p.events if e.reason == "RolloutStep"]
    assert [s.split(":")[0] for s in steps] == [f"step {i}/6" for i in range(1, 7)]
    # errors: 10 s apart, count 3; p99: 30 s default interval -> the analyses take 30 s each
    assert 60 <= len(healthy) <= 60 + 120 + 10
    broken = drive(endpoint, BAD, 600)
    aborted = broken[-1].rollout
    assert aborted is not None and aborted.phase == "Aborted" and aborted.abort is not None
    # step 1 served at t=1, its windows start then, the first measurement one interval (10 s)
    # later aborts: traffic is off the candidate at t=11
    assert len(broken) == 12 and aborted.abort.metric == "errors"
    assert running_split(endpoint, aborted, at(11)).traffic == {"blue": 100, "green": 0}


def test_messages_stay_within_the_api_bounds() -> None:
    endpoint = spec(
        metrics=[{**ERRORS, "consecutiveErrorLimit": 0}],
        steps=[{"analysis": {"metrics": ["errors"]}}],
    )
    status = tick(endpoint, None, T0).rollout
    status = tick(endpoint, status, at(1), measurements={"errors": BASE}).rollout
    huge = RawMeasurement(error="x" * 20_000)
    plan = tick(endpoint, status, at(11), measurements={"errors": huge})
    assert plan.rollout is not None and plan.rollout.phase == "Aborted"
    assert len(plan.rollout.metrics[0].measurements[-1].message or "") <= 512
    assert len(plan.rollout.message) <= 4096 and len(plan.events[0].message) <= 1024
    assert RolloutStatus.model_validate(plan.rollout.model_dump(mode="json")) == plan.rollout


def test_fresh_names_every_metric_start() -> None:
    live = {**ERRORS, "name": "live", "count": 0}
    endpoint = spec(backgroundAnalysis={"metrics": ["live"]}, metrics=[ERRORS, LATENCY, live])
    first = tick(endpoint, None, T0)
    assert first.fresh == ("live",)  # background from step 0
    assert tick(endpoint, first.rollout, at(0.5)).fresh == ()  # nothing started
    status = first.rollout
    assert status is not None
    paused = tick(endpoint, status, at(10), measurements={"live": MID}).rollout
    assert paused is not None and paused.phase == "Paused"
    resumed = tick(endpoint, paused, at(11), request=request("promote", paused))
    assert resumed.fresh == ("live",)  # started afresh after the inconclusive pause
    assert resumed.rollout is not None
    aborted = tick(endpoint, resumed.rollout, at(12), request=request("abort", paused, "r2"))
    assert aborted.fresh == ()
    assert aborted.rollout is not None
    retried = tick(endpoint, aborted.rollout, at(13), request=request("retry", paused, "r3"))
    assert retried.fresh == ("live",)  # a new rollout of the same revision
