"""The drift episode state machine: starts at once, ends only after calm evidence, never flaps."""

from __future__ import annotations

import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.reconcile.drift_episodes import (
    Episode,
    EpisodePolicy,
    episode_from_status,
    episode_to_status,
    step_episode,
)

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
POLICY = EpisodePolicy(clear_evaluations=3, cooldown_seconds=60)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def run(verdicts: list[bool | None], step: float = 30) -> list[str | None]:
    episode, out = Episode(), []
    for i, verdict in enumerate(verdicts):
        episode, transition = step_episode(episode, verdict, at(i * step), POLICY)
        out.append(transition)
    return out


def test_drift_starts_at_the_first_drifted_evaluation() -> None:
    assert run([False, False, True, True]) == [None, None, "started", None]


def test_ends_after_enough_clean_evaluations_and_the_cooldown() -> None:
    # Clean at t=30, 60, 90: three evaluations spanning 60 s since the first clean one.
    assert run([True, False, False, False]) == ["started", None, None, "ended"]


def test_cooldown_holds_even_with_enough_evaluations() -> None:
    # Every 10 s: the third clean evaluation comes 20 s after the first; 60 s are needed.
    transitions = run([True] + [False] * 7, step=10)
    assert transitions.index("ended") == 7  # clean since t=10, calm at t=70


def test_a_relapse_resets_the_clean_run() -> None:
    assert run([True, False, False, True, False, False, False]) == [
        "started",
        None,
        None,
        None,
        None,
        None,
        "ended",
    ]


def test_no_verdict_changes_nothing() -> None:
    episode, _ = step_episode(Episode(), True, at(0), POLICY)
    same, transition = step_episode(episode, None, at(500), POLICY)
    assert (same, transition) == (episode, None)
    assert run([None, None]) == [None, None]


def test_status_round_trip() -> None:
    episode = Episode(active=True, started_at=at(0), clear_evaluations=2, clear_since=at(30))
    doc = episode_to_status(episode)
    assert doc == {
        "active": True,
        "clearEvaluations": 2,
        "startedAt": "2026-01-01T12:00:00.000Z",
        "clearSince": "2026-01-01T12:00:30.000Z",
    }
    assert episode_from_status(doc) == episode
    assert episode_to_status(Episode()) == {"active": False, "clearEvaluations": 0}
    assert episode_from_status(None) == Episode()
    assert episode_from_status({"active": True, "startedAt": "garbage"}).started_at is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([True, False, None]), max_size=60),
    st.integers(min_value=1, max_value=5),
    st.sampled_from([0.0, 15.0, 45.0, 120.0]),
)
def test_events_alternate_and_end_only_after_calm(
    verdicts: list[bool | None], clear: int, cooldown: float
) -> None:
    policy = EpisodePolicy(clear_evaluations=clear, cooldown_seconds=cooldown)
    episode, history = Episode(), []
    expected_next = "started"
    for i, verdict in enumerate(verdicts):
        episode, transition = step_episode(episode, verdict, at(i * 10), policy)
        history.append(verdict)
        if transition is None:
            continue
        assert transition == expected_next
        expected_next = "ended" if transition == "started" else "started"
        if transition == "started":
            assert verdict is True
        else:
            seen = [v for v in history if v is not None]
            assert len(seen) >= clear and not any(seen[-clear:])
            # The clean run since the last drifted verdict spans the cooldown.
            last_drift = max(j for j, v in enumerate(history) if v is True)
            first_clean = next(j for j in range(last_drift + 1, i + 1) if history[j] is False)
            assert (i - first_clean) * 10 >= cooldown
        assert episode.active == (transition == "started")


def test_stored_times_keep_milliseconds_for_short_cooldowns() -> None:
    policy = EpisodePolicy(clear_evaluations=1, cooldown_seconds=1.0)
    start = T0 + datetime.timedelta(milliseconds=900)
    episode, _ = step_episode(Episode(), True, start, policy)
    stored = episode_from_status(episode_to_status(episode))
    # First clean evaluation at 12:00:00.950: it opens the cooldown, it cannot end it.
    clean = T0 + datetime.timedelta(milliseconds=950)
    stored, transition = step_episode(stored, False, clean, policy)
    assert transition is None
    stored = episode_from_status(episode_to_status(stored))
    assert stored.clear_since == clean
    # 0.9 s later (12:00:01.850) the cooldown has not elapsed, whatever the seconds digit says.
    _, transition = step_episode(stored, False, clean + datetime.timedelta(seconds=0.9), policy)
    assert transition is None
    _, transition = step_episode(stored, False, clean + datetime.timedelta(seconds=1), policy)
    assert transition == "ended"
