"""Trigger debounce: one run per drift episode, refusals (active run, cooldown, daily cap)
with day rollover, onNewData, run names, and the shared schedule pieces."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.pipeline import PipelineTrigger
from mlkube.reconcile.batch_schedule import bounded_name, scheduled_job_name
from mlkube.reconcile.batch_schedule_jobs import ScheduledJob, concurrency_decision
from mlkube.reconcile.pipeline_triggers import (
    TriggerState,
    latest_drift_episode,
    on_new_data,
    should_fire,
    trigger_state,
)

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
DRIFT = PipelineTrigger.model_validate(
    {"name": "retrain", "onDrift": {"endpoint": "credit", "cooldown": "1h", "maxRunsPerDay": 3}}
)
DATA = PipelineTrigger.model_validate({"name": "fresh", "onNewData": {"uri": "s3://b/data/"}})


def endpoint(*episodes: tuple[str, dt.datetime | None, bool]) -> dict[str, Any]:
    return {
        "deployments": [
            {"name": name, "drift": {"episode": {
                "active": active, **({"startedAt": f"{at:%Y-%m-%dT%H:%M:%SZ}"} if at else {})}}}
            for name, at, active in episodes
        ]
    }  # fmt: skip


def test_an_active_episode_fires_once() -> None:
    status = endpoint(("blue", T0, True))
    first = should_fire("credit-retrain", DRIFT, status, TriggerState("retrain"), [], T0 + MIN)
    assert first.run_name is not None and first.run_name.startswith("credit-retrain-drift-")
    assert first.detail == "drift on credit/blue since 2026-11-30T09:00:00Z"
    assert first.state.last_episode == T0 and first.state.fired_today == 1
    assert first.state.day_started == dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    # The same episode, later, after its run ended: nothing new.
    again = should_fire("credit-retrain", DRIFT, status, first.state, [], T0 + 3 * 60 * MIN)
    assert again.run_name is None and again.refusal is None and again.state == first.state
    # The name is a function of (trigger, startedAt): a restart names the same run.
    assert should_fire("credit-retrain", DRIFT, status, TriggerState("retrain"), [], T0).run_name \
        == first.run_name  # fmt: skip


def test_no_active_episode_no_run() -> None:
    for status in (None, {}, endpoint(("blue", T0, False)), endpoint(("blue", None, True))):
        decision = should_fire("p", DRIFT, status, TriggerState("retrain"), [], T0)
        assert decision.run_name is None and decision.refusal is None


def test_refusals_say_why_and_the_episode_fires_once_they_lift() -> None:
    fired = should_fire("p", DRIFT, endpoint(("blue", T0, True)), TriggerState("retrain"), [], T0)
    later = endpoint(("blue", T0 + 10 * MIN, True))  # a new episode
    busy = should_fire("p", DRIFT, later, fired.state, ["p-drift-1"], T0 + 11 * MIN)
    assert busy.run_name is None
    assert busy.refusal == (
        "drift on credit/blue since 2026-11-30T09:10:00Z: run p-drift-1 of this trigger is active"
    )
    assert busy.state.message == busy.refusal and busy.state.last_episode == T0
    cool = should_fire("p", DRIFT, later, fired.state, [], T0 + 30 * MIN)
    assert (
        cool.refusal is not None and "in cooldown (1h) until 2026-11-30T10:00:00Z" in cool.refusal
    )
    go = should_fire("p", DRIFT, later, cool.state, [], T0 + 60 * MIN)
    assert go.run_name is not None and go.run_name != fired.run_name
    assert go.state.message is None and go.state.fired_today == 2


def test_the_daily_cap_resets_at_midnight_utc() -> None:
    midnight = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    state = TriggerState(
        "retrain", last_fired=T0, fired_today=3, day_started=midnight, last_episode=T0
    )
    status = endpoint(("blue", T0 + 120 * MIN, True))
    capped = should_fire("p", DRIFT, status, state, [], T0 + 121 * MIN)
    assert capped.refusal is not None and "3 runs today already (maxRunsPerDay 3" in capped.refusal
    tomorrow = dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC)
    fired = should_fire("p", DRIFT, status, capped.state, [], tomorrow)
    assert fired.run_name is not None
    assert fired.state.fired_today == 1
    assert fired.state.day_started == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def test_deployment_filter_and_the_latest_episode() -> None:
    status = endpoint(("blue", T0, True), ("green", T0 + MIN, True), ("red", T0 + 9 * MIN, False))
    assert latest_drift_episode(status, None) == ("green", T0 + MIN)
    assert latest_drift_episode(status, "blue") == ("blue", T0)
    assert latest_drift_episode(status, "red") is None


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 240), st.booleans(), st.booleans()), max_size=60))
def test_never_more_than_the_cap_never_inside_cooldown_never_twice_per_episode(
    events: list[tuple[int, bool, bool]],
) -> None:
    """A day of drift flapping: at each step time passes, an episode may start, a run may be
    active. Whatever happens the rules hold."""
    now, started, state = T0, T0, TriggerState("retrain")
    fired: list[tuple[dt.datetime, dt.datetime]] = []  # (when, episode)
    for minutes, new_episode, busy in events:
        now += dt.timedelta(minutes=minutes)
        if new_episode:
            started = now
        d = should_fire("p", DRIFT, endpoint(("blue", started, True)), state, ["r"] * busy, now)
        if d.run_name is not None:
            assert not busy
            fired.append((now, started))
        state = d.state
    episodes = [e for _, e in fired]
    assert len(episodes) == len(set(episodes))
    for (a, _), (b, _) in itertools.pairwise(fired):
        assert b - a >= dt.timedelta(hours=1)
    for day in {w.date() for w, _ in fired}:
        assert sum(1 for w, _ in fired if w.date() == day) <= 3


def test_new_data_records_first_then_fires_on_change() -> None:
    first = on_new_data("p", DATA, TriggerState("fresh"), "sha256:a", [], T0)
    assert first.run_name is None and first.state.last_digest == "sha256:a"
    same = on_new_data("p", DATA, first.state, "sha256:a", [], T0 + MIN)
    assert same.run_name is None and same.state == first.state
    busy = on_new_data("p", DATA, first.state, "sha256:b", ["p-data-x"], T0 + MIN)
    assert busy.refusal is not None and busy.state.last_digest == "sha256:a"
    fired = on_new_data("p", DATA, busy.state, "sha256:b", [], T0 + 2 * MIN)
    assert fired.run_name is not None and fired.run_name.startswith("p-data-")
    assert fired.state.last_digest == "sha256:b" and fired.detail == (
        "new data under s3://b/data/: sha256:b"
    )


def test_state_round_trips_through_the_status() -> None:
    state = TriggerState("retrain", T0, "p-drift-1", 2, T0.replace(hour=0), "sha256:a", T0, "m")
    assert trigger_state("retrain", state.to_wire()) == state
    assert trigger_state("retrain", None) == TriggerState("retrain")


def test_names_stay_within_63_characters_and_keep_their_suffix() -> None:
    long = "p" * 60
    name = bounded_name(long, "drift", "0123456789")
    assert len(name) <= 63 and name.endswith("-0123456789")
    assert bounded_name(long, "drift", "0123456789") != bounded_name(
        long + "q", "drift", "0123456789"
    )
    assert scheduled_job_name("ep", "nightly", T0) == f"ep-nightly-{int(T0.timestamp()) // 60}"


def test_schedules_reuse_the_batch_concurrency_decision() -> None:
    active = ScheduledJob("p-nightly-1", "u", T0, "", "Running", False)
    skip = concurrency_decision("Forbid", [active], kind="PipelineRun")
    assert skip.action == "skip" and skip.reason == "PipelineRun p-nightly-1 still running"
