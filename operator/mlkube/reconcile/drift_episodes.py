"""Drift episodes: when to say "drift started" and "drift ended", without flapping.

A window hovering around a threshold flips its verdict from one evaluation to the next; posting
an Event each time would bury the signal. An episode starts at the first evaluation that shows
drift. It ends only after `clear_evaluations` consecutive clean evaluations that also span at
least `cooldown_seconds` since the first of them; any drifted evaluation in between resets
that count. Evaluations without data (no replica reachable, window not evaluated) change
nothing. The state lives in the endpoint's status, so an operator restart neither repeats nor
loses an Event. Pure: the clock comes in as an argument.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

Transition = Literal["started", "ended"]
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class EpisodePolicy:
    """How much clean evidence ends an episode (both parts must hold)."""

    clear_evaluations: int = 3
    cooldown_seconds: float = 300.0


@dataclass(frozen=True)
class Episode:
    active: bool = False
    started_at: datetime.datetime | None = None
    clear_evaluations: int = 0
    clear_since: datetime.datetime | None = None


def step_episode(
    episode: Episode, detected: bool | None, now: datetime.datetime, policy: EpisodePolicy
) -> tuple[Episode, Transition | None]:
    """The episode after one evaluation (`detected` None: no verdict this time)."""
    if detected is None:
        return episode, None
    if detected:
        if episode.active:
            return replace(episode, clear_evaluations=0, clear_since=None), None
        return Episode(active=True, started_at=now), "started"
    if not episode.active:
        return episode, None
    clear_since = episode.clear_since or now
    count = episode.clear_evaluations + 1
    calm = (now - clear_since).total_seconds() >= policy.cooldown_seconds
    if count >= policy.clear_evaluations and calm:
        return Episode(), "ended"
    return replace(episode, clear_evaluations=count, clear_since=clear_since), None


def format_time(value: datetime.datetime | None, *, millis: bool = False) -> str | None:
    """RFC 3339 UTC; `millis` keeps milliseconds (episode times feed the cooldown arithmetic,
    where truncating to whole seconds would end a short cooldown up to a second early)."""
    if value is None:
        return None
    utc = value.astimezone(datetime.UTC)
    if millis:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime(TIME_FORMAT)


def parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def episode_from_status(doc: Mapping[str, Any] | None) -> Episode:
    """The episode kept in `status.deployments[].drift.episode` (none: no episode)."""
    doc = doc or {}
    return Episode(
        active=bool(doc.get("active", False)),
        started_at=parse_time(doc.get("startedAt")),
        clear_evaluations=max(0, int(doc.get("clearEvaluations") or 0)),
        clear_since=parse_time(doc.get("clearSince")),
    )


def episode_to_status(episode: Episode) -> dict[str, Any]:
    """The status form; unset times are left out (the schema has no nulls to store)."""
    doc: dict[str, Any] = {"active": episode.active, "clearEvaluations": episode.clear_evaluations}
    for key, value in (("startedAt", episode.started_at), ("clearSince", episode.clear_since)):
        text = format_time(value, millis=True)
        if text is not None:
            doc[key] = text
    return doc
