"""When a Pipeline trigger fires (pure; the clock, the endpoint's episodes and the runs are
arguments). docs/pipelines.md §5.

onDrift fires once per drift episode: for the newest active episode whose `startedAt` is later
than the one that fired last (`lastEpisode`), so an episode that goes on, or an older one on
another deployment, never fires again. It is refused (and re-evaluated: it fires when the
refusal ends, if the episode is still active) while a run of this trigger is active, within
`cooldown` of the last fire, and after `maxRunsPerDay` fires in the current day window (24 h
from the first fire of the window). The status is only a cache: the runs themselves (their
creation times) bound the cooldown and the daily count too, so a lost status never lets a
trigger fire more often; the run name (one per episode) keeps an episode from firing twice.

onNewData fires when the content digest under the prefix differs from the last one seen; the
first observation (no `lastDigest`) only records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from mlkube.reconcile.batch_schedule import format_time

DAY: Final = dt.timedelta(days=1)


def parse_stamp(text: object) -> dt.datetime | None:
    """An RFC 3339 timestamp (`Z` or an offset, optional fraction) as an aware UTC datetime."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class FireState:
    """A trigger's debounce state (status.triggers[]), parsed."""

    last_fired: dt.datetime | None = None
    fired_today: int = 0
    day_started: dt.datetime | None = None
    last_episode: dt.datetime | None = None

    @classmethod
    def of(cls, status: dict[str, object] | None) -> FireState:
        status = status or {}
        fired = status.get("firedToday")
        return cls(
            last_fired=parse_stamp(status.get("lastFired")),
            fired_today=fired if isinstance(fired, int) and fired >= 0 else 0,
            day_started=parse_stamp(status.get("dayStarted")),
            last_episode=parse_stamp(status.get("lastEpisode")),
        )

    def after_fire(self, now: dt.datetime) -> FireState:
        """The state once a run started now (a new day window opens when the old one ended)."""
        if self.day_started is None or now - self.day_started >= DAY:
            return replace(self, last_fired=now, fired_today=1, day_started=now)
        return replace(self, last_fired=now, fired_today=self.fired_today + 1)


@dataclass(frozen=True)
class PastRun:
    """A run this trigger started (from the API): when, and whether it still runs."""

    name: str
    created: dt.datetime | None
    active: bool


@dataclass(frozen=True)
class Episode:
    """An active drift episode of one deployment of the endpoint."""

    deployment: str
    started_at: dt.datetime


@dataclass(frozen=True)
class DriftVerdict:
    action: Literal["none", "fire", "refuse"]
    episode: Episode | None = None
    reason: str = ""  # why it refused (status message and the TriggerSuppressed Event)
    retry_at: dt.datetime | None = None  # when a refusal may end on its own (cooldown, day)


def newest_episode(episodes: Sequence[Episode], last: dt.datetime | None) -> Episode | None:
    """The newest active episode later than the one that fired last, if any."""
    fresh = [e for e in episodes if last is None or e.started_at > last]
    return max(fresh, key=lambda e: (e.started_at, e.deployment), default=None)


def drift_verdict(
    *,
    episodes: Sequence[Episode],
    state: FireState,
    runs: Sequence[PastRun],
    cooldown: dt.timedelta,
    max_per_day: int,
    now: dt.datetime,
) -> DriftVerdict:
    episode = newest_episode(episodes, state.last_episode)
    if episode is None:
        return DriftVerdict("none")
    active = sorted(r.name for r in runs if r.active)
    if active:
        return DriftVerdict(
            "refuse", episode, f"run {', '.join(active)} of this trigger is still active"
        )
    created = [r.created for r in runs if r.created is not None]
    last_fired = max([t for t in (state.last_fired, *created) if t is not None], default=None)
    if last_fired is not None and now < last_fired + cooldown:
        until = last_fired + cooldown
        return DriftVerdict(
            "refuse", episode,
            f"cooldown: last run started {format_time(last_fired)}, next possible"
            f" {format_time(until)}", until,
        )  # fmt: skip
    window = state.day_started if state.day_started and now - state.day_started < DAY else None
    since = window or now - DAY
    fired = max(state.fired_today if window else 0, sum(1 for t in created if t >= since))
    if fired >= max_per_day:
        first = min([t for t in created if t >= since] + ([window] if window else []))
        until = first + DAY
        return DriftVerdict(
            "refuse", episode,
            f"maxRunsPerDay {max_per_day} reached ({fired} since {format_time(since)}), next"
            f" possible {format_time(until)}", until,
        )  # fmt: skip
    return DriftVerdict("fire", episode)


DataAction = Literal["record", "fire", "same"]


def data_verdict(digest: str, last_digest: str | None) -> DataAction:
    """First observation records; a different digest fires; the same does nothing."""
    if last_digest is None:
        return "record"
    return "same" if digest == last_digest else "fire"
