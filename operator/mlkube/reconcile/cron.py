"""Five-field cron expressions and their matching wall-clock minutes (pure, stdlib only).

A small parser of our own rather than a dependency: the operator needs only the standard
fields (minute hour day-of-month month day-of-week, with `*`, `?`, lists, ranges, steps and
JAN-DEC / SUN-SAT names) and the `@hourly`-style macros that `api/batch.py` admits, and the
time-zone and DST rules live one layer up (`reconcile/batch_schedule.py`), on top of the
naive wall-clock search here. Day-of-month and day-of-week follow Vixie cron (and the
Kubernetes CronJob): when both are restricted, a day matches if either does.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Final

MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS: Final = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS: Final = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# (name, lowest, highest, names) per field; day-of-week 7 is Sunday too.
_NO_NAMES: Final[dict[str, int]] = {}
_FIELDS: Final[tuple[tuple[str, int, int, dict[str, int]], ...]] = (
    ("minute", 0, 59, _NO_NAMES),
    ("hour", 0, 23, _NO_NAMES),
    ("day of month", 1, 31, _NO_NAMES),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# A cron that matches nothing (e.g. `0 0 30 2 *`) is searched this far, then given up.
SEARCH_YEARS: Final = 12
_MINUTE: Final = dt.timedelta(minutes=1)


class CronError(ValueError):
    """The expression is not a valid cron expression (the message says which field)."""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, day: dt.date) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_wall(self, start: dt.datetime) -> dt.datetime | None:
        """The first matching naive minute at or after `start` (seconds dropped)."""
        t = start.replace(second=0, microsecond=0)
        if t < start:
            t += _MINUTE
        limit = t.year + SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = dt.datetime(year, month, 1)
            elif not self.day_matches(t.date()):
                t = dt.datetime(t.year, t.month, t.day) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
            else:
                later = [m for m in self.minutes if m >= t.minute]
                if later:
                    return t.replace(minute=min(later))
                t = t.replace(minute=0) + dt.timedelta(hours=1)
        return None

    def previous_wall(self, end: dt.datetime) -> dt.datetime | None:
        """The last matching naive minute at or before `end`."""
        t = end.replace(second=0, microsecond=0)
        limit = t.year - SEARCH_YEARS
        while t.year >= limit:
            if t.month not in self.months:
                t = dt.datetime(t.year, t.month, 1) - _MINUTE
            elif not self.day_matches(t.date()):
                t = dt.datetime(t.year, t.month, t.day) - _MINUTE
            elif t.hour not in self.hours:
                t = t.replace(minute=0) - _MINUTE
            else:
                earlier = [m for m in self.minutes if m <= t.minute]
                if earlier:
                    return t.replace(minute=max(earlier))
                t = t.replace(minute=0) - _MINUTE
        return None


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            raise CronError(f"{field}: {text!r} is not a number" + (" or a name" if names else ""))
        value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is outside {low}-{high}")
    return value


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = (_value(x, field, low, high, names) for x in (a, b))
            if first > last:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            first = _value(base, field, low, high, names)
            last = high if step_text else first  # `5/15` means 5-max/15, as in robfig/cron
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> Cron:
    """Parse a five-field expression or a macro; raises CronError naming the bad field."""
    text = MACROS.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise CronError(
            f"{expression!r} has {len(parts)} fields: use minute hour day-of-month month"
            " day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly"
        )
    minutes, hours, days, months, weekdays = (
        _field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)
    )
    return Cron(
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=not parts[2].startswith(("*", "?")),
        weekdays_restricted=not parts[4].startswith(("*", "?")),
    )
