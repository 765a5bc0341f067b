"""The onDrift and onNewData decisions (pure): one fire per episode, the newest episode only,
refusals while a run is active, within the cooldown and past maxRunsPerDay (also from the runs
alone, as after a lost status), the day window, and first-observation recording."""

from __future__ import annotations

import datetime as dt

from mlkube.reconcile.pipeline_trigger import (
    DriftVerdict,
    Episode,
    FireState,
    PastRun,
    data_verdict,
    drift_verdict,
    parse_stamp,
)

T0 = dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def verdict(
    episodes: list[Episode],
    state: FireState | None = None,
    runs: list[PastRun] | None = None,
    now: dt.datetime = T0,
    max_per_day: int = 3,
) -> DriftVerdict:
    return drift_verdict(
        episodes=episodes,
        state=state or FireState(),
        runs=runs or [],
        cooldown=HOUR,
        max_per_day=max_per_day,
        now=now,
    )


def test_an_active_episode_fires_once_and_only_a_newer_one_fires_again() -> None:
    blue = Episode("blue", at(-5))
    assert verdict([blue]).action == "fire"
    fired = FireState().after_fire(T0)
    state = FireState(fired.last_fired, fired.fired_today, fired.day_started, blue.started_at)
    assert verdict([blue], state, now=at(120)).action == "none"
    # An older episode on another deployment never fires after a newer one did.
    assert verdict([blue, Episode("green", at(-30))], state, now=at(120)).action == "none"
    newer = Episode("green", at(100))
    result = verdict([blue, newer], state, now=at(120))
    assert (result.action, result.episode) == ("fire", newer)


def test_refused_while_a_run_of_the_trigger_is_active() -> None:
    result = verdict([Episode("blue", at(0))], runs=[PastRun("p-drift-1", at(-300), True)])
    assert (
        result.action == "refuse"
        and "run p-drift-1 of this trigger is still active" in result.reason
    )
    assert result.retry_at is None  # the run ending kicks the pipeline


def test_cooldown_from_the_status_or_from_the_runs_alone() -> None:
    episode = [Episode("blue", at(30))]
    state = FireState(last_fired=at(0), fired_today=1, day_started=at(0))
    result = verdict(episode, state, now=at(40))
    assert result.action == "refuse" and result.retry_at == at(60)
    assert "next possible 2026-05-01T11:00:00Z" in result.reason
    # A lost status: the run's creation time bounds the cooldown just the same.
    lost = verdict(episode, FireState(), [PastRun("r", at(0), False)], now=at(40))
    assert lost.action == "refuse" and lost.retry_at == at(60)
    assert verdict(episode, state, now=at(60)).action == "fire"


def test_max_runs_per_day_counts_the_window_and_the_runs() -> None:
    episode = [Episode("blue", at(300))]
    state = FireState(last_fired=at(120), fired_today=3, day_started=at(0))
    result = verdict(episode, state, now=at(310))
    assert result.action == "refuse" and "maxRunsPerDay 3 reached" in result.reason
    assert result.retry_at == at(24 * 60)
    assert verdict(episode, state, now=at(24 * 60)).action == "fire"  # a new window
    runs = [PastRun(f"r{i}", at(i * 90), False) for i in range(3)]
    assert verdict(episode, FireState(), runs, now=at(310)).action == "refuse"


def test_the_day_window_opens_at_the_first_fire_after_the_last_one_ended() -> None:
    state = FireState().after_fire(at(0)).after_fire(at(60))
    assert (state.fired_today, state.day_started) == (2, at(0))
    later = state.after_fire(at(24 * 60 + 1))
    assert (later.fired_today, later.day_started) == (1, at(24 * 60 + 1))


def test_new_data_records_the_first_observation_then_fires_on_change() -> None:
    assert data_verdict("sha256:a", None) == "record"
    assert data_verdict("sha256:a", "sha256:a") == "same"
    assert data_verdict("sha256:b", "sha256:a") == "fire"


def test_timestamps_parse_with_z_offsets_and_fractions() -> None:
    assert parse_stamp("2026-05-01T10:00:00Z") == T0
    assert parse_stamp("2026-05-01T12:00:00.5+02:00") == T0 + dt.timedelta(seconds=0.5)
    assert parse_stamp("yesterday") is None and parse_stamp(None) is None
