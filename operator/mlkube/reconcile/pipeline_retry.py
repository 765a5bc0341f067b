"""When a failed step's next attempt starts (pure): exponential backoff, pinned once recorded.

Each attempt is its own Job (`backoffLimit: 0`), so the operator, not the Job controller, owns
the delay: attempt N+1 starts `duration * factor^(N-1)` (at most `maxDuration`) after attempt N
ended. The time is computed from the failed Job's end when known; once written to the status
(`nextAttemptTime`) that value wins, so a pass that cannot see the end time (the Job is gone)
does not push the retry further out every time it runs.

    backoff_delay(backoff, failed_attempt) -> timedelta
    next_attempt_at(backoff, failed_attempt, ended, recorded, recorded_attempts, now) -> datetime
    parse_time(text) -> datetime | None
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from mlkube.api.duration import parse_duration


class Backoff(Protocol):
    @property
    def duration(self) -> str: ...

    @property
    def factor(self) -> float: ...

    @property
    def max_duration(self) -> str: ...


def backoff_delay(backoff: Backoff, failed_attempt: int) -> dt.timedelta:
    """Delay before attempt N+1 after attempt N failed: duration * factor^(N-1), at most
    maxDuration."""
    first = parse_duration(backoff.duration).total_seconds()
    cap = parse_duration(backoff.max_duration).total_seconds()
    grown = first * float(backoff.factor) ** max(0, failed_attempt - 1)
    return dt.timedelta(seconds=min(cap, grown))


def parse_time(text: Any) -> dt.datetime | None:
    """An RFC 3339 status timestamp as an aware datetime; None when absent or damaged."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def next_attempt_at(
    backoff: Backoff,
    failed_attempt: int,
    *,
    ended: dt.datetime | None,
    recorded: Any,
    recorded_attempts: int,
    now: dt.datetime,
) -> dt.datetime:
    """When attempt `failed_attempt + 1` starts: the status' nextAttemptTime (`recorded`) when
    it belongs to this failure, else the failed Job's end (or now) plus the backoff."""
    pinned = parse_time(recorded)
    if pinned is not None and recorded_attempts == failed_attempt:
        return pinned
    return (ended or now) + backoff_delay(backoff, failed_attempt)
