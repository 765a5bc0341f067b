"""When a BatchEndpoint schedule fires, and what a firing creates (pure; the clock is an argument).

A schedule's cron is read in its IANA time zone (docs/batch-endpoints.md §7): a local time that
does not exist (spring forward) is skipped, one that occurs twice (fall back) fires once, at
its first occurrence. Over the existing local minutes, the first occurrence's UTC instant grows
with the wall clock, so the searches below walk wall-clock minutes (`reconcile/cron.py`) and
only skip the few that do not exist or lie on the wrong side of the instant.

`plan_schedule` is the whole decision for one schedule at one instant: which time fires, how
many were missed, the next time. Its cursor is the status' `nextScheduleTime` (every time
before it was handled: fired, skipped or counted missed); the guard against firing twice is
not the cursor but the job name, a pure function of the scheduled time (`scheduled_job_name`),
created with POST only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mlkube.reconcile.cron import Cron, CronError, parse_cron

UTC: Final = dt.UTC
# Lateness the loop itself causes (waking up, a slow API): always on time, whatever the deadline.
WAKE_TOLERANCE: Final = dt.timedelta(seconds=10)
# Missed times are counted one by one up to this many per evaluation (an every-minute schedule
# after a week away is 10,080); beyond it the count is a lower bound.
MAX_COUNTED: Final = 100_000
# Wall-clock shifts in tzdata are at most 2 h: a backward search starting this far ahead of
# the instant's wall time sees every local minute whose first occurrence precedes it.
_MAX_SHIFT: Final = dt.timedelta(hours=3)
_MINUTE: Final = dt.timedelta(minutes=1)
MAX_JOB_NAME: Final = 63
_HASH: Final = 8
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["CronError", "ScheduleError", "Timing", "zone_of"]


class ScheduleError(ValueError):
    """A schedule that cannot run (bad cron, unknown time zone, bad uri template)."""


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ScheduleError(
            f"unknown time zone {name!r} (use an IANA name, e.g. Europe/Berlin)"
        ) from err


@dataclass(frozen=True)
class Timing:
    """A parsed cron in its time zone: the instants (UTC) it fires at."""

    cron: Cron
    zone: ZoneInfo

    @classmethod
    def parse(cls, cron: str, time_zone: str) -> Timing:
        try:
            parsed = parse_cron(cron)
        except CronError as err:
            raise ScheduleError(f"invalid cron {cron!r}: {err}") from err
        return cls(parsed, zone_of(time_zone))

    def _instant(self, wall: dt.datetime) -> dt.datetime | None:
        """The first occurrence of the local wall time, or None where it does not exist."""
        local = wall.replace(tzinfo=self.zone, fold=0)
        instant = local.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) != wall:
            return None  # in a spring-forward gap
        return instant

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first fire time strictly after `after`."""
        start = after.astimezone(self.zone).replace(tzinfo=None)
        while (wall := self.cron.next_wall(start)) is not None:
            instant = self._instant(wall)
            if instant is not None and instant > after:
                return instant
            start = wall + _MINUTE
        return None

    def last_at_or_before(self, end: dt.datetime) -> dt.datetime | None:
        """The last fire time at or before `end`."""
        start = end.astimezone(self.zone).replace(tzinfo=None) + _MAX_SHIFT
        while (wall := self.cron.previous_wall(start)) is not None:
            instant = self._instant(wall)
            if instant is not None and instant <= end:
                return instant
            start = wall - _MINUTE
        return None

    def count_between(self, start: dt.datetime, end: dt.datetime) -> int:
        """Fire times t with start <= t < end (up to MAX_COUNTED)."""
        count, t = 0, self.next_after(start - dt.timedelta(microseconds=1))
        while t is not None and t < end and count < MAX_COUNTED:
            count, t = count + 1, self.next_after(t)
        return count


@dataclass(frozen=True)
class SchedulePlan:
    """What one evaluation of a schedule decided."""

    fire: dt.datetime | None  # the scheduled time to create a job for now
    missed: int  # times given up (past the deadline, or while suspended)
    next_time: dt.datetime | None  # the cursor: the first time not handled yet


def plan_schedule(
    timing: Timing,
    *,
    now: dt.datetime,
    cursor: dt.datetime | None,
    deadline_seconds: int,
    suspended: bool,
) -> SchedulePlan:
    """Due times are those in [cursor, now]; only the most recent fires, and only within the
    deadline (CronJob semantics: no storm after an outage); every other one is missed. A new
    schedule (no cursor) has missed nothing: its most recent time fires if within the deadline."""
    latest = timing.last_at_or_before(now)
    next_time = timing.next_after(now)
    if latest is None or (cursor is not None and latest < cursor):
        return SchedulePlan(fire=None, missed=0, next_time=next_time)
    on_time = now - latest <= max(dt.timedelta(seconds=deadline_seconds), WAKE_TOLERANCE)
    older = timing.count_between(cursor, latest) if cursor is not None else 0
    if suspended:
        return SchedulePlan(fire=None, missed=older + (cursor is not None), next_time=next_time)
    if on_time:
        return SchedulePlan(fire=latest, missed=older, next_time=next_time)
    return SchedulePlan(fire=None, missed=older + (cursor is not None), next_time=next_time)


def minutes_since_epoch(instant: dt.datetime) -> int:
    return int((instant - _EPOCH).total_seconds() // 60)


def scheduled_job_name(endpoint: str, schedule: str, instant: dt.datetime) -> str:
    """`<endpoint>-<schedule>-<UTC minutes since epoch>`; past 63 characters the head is cut
    and a hash of (endpoint, schedule) keeps it unique, the minutes always stay readable."""
    minutes = str(minutes_since_epoch(instant))
    name = f"{endpoint}-{schedule}-{minutes}"
    if len(name) <= MAX_JOB_NAME:
        return name
    digest = hashlib.sha256(f"{endpoint}\0{schedule}".encode()).hexdigest()[:_HASH]
    room = MAX_JOB_NAME - len(minutes) - len(digest) - 2
    head = re.sub(r"[^a-z0-9-]+", "-", f"{endpoint}-{schedule}".lower())[:room].strip("-.")
    return f"{head}-{digest}-{minutes}"


def format_time(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None  # a damaged cache: treated as absent (job names still guard)
