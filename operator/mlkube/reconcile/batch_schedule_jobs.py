"""What a schedule does with its BatchJobs (pure): the uri template of a scheduled time, the
concurrencyPolicy decision, and which finished jobs the history limits delete.

Templates: `{scheduledTime}` is the scheduled instant in UTC, RFC 3339 (`2026-03-29T01:30:00Z`),
a machine-readable name; `{scheduledTime:<strftime>}` renders the schedule's own wall clock
(its `timeZone`), since a format like `%Y/%m/%d` names the local day's data folder. `{{` and
`}}` are literal braces. Anything else in braces is refused, at admission (the CEL rule built
from api/batch.py URI_TEMPLATE_PATTERN) and here, so a typo never becomes a literal folder name.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from mlkube.api.batch import MSG_URI_TEMPLATE, SCHEDULE_PLACEHOLDER, TEMPLATE_DIRECTIVES
from mlkube.reconcile.batch_schedule import ScheduleError, format_time

_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_DIRECTIVE: Final = re.compile(r"%(.?)")
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed", "Cancelled"})


def render_uri(template: str, instant: dt.datetime, zone: dt.tzinfo) -> str:
    """The template with the scheduled time filled in; ScheduleError on a bad placeholder."""
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        out.append(template[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            out.append(token[0])
            continue
        inner = match.group(1)
        name, colon, fmt = (inner or "").partition(":")
        if inner is None or name != SCHEDULE_PLACEHOLDER or (colon and not fmt):
            raise ScheduleError(f"{token!r} in {template!r}: {MSG_URI_TEMPLATE}")
        if not colon:
            out.append(format_time(instant))
            continue
        for directive in _DIRECTIVE.findall(fmt):
            if not directive or directive not in TEMPLATE_DIRECTIVES:
                raise ScheduleError(f"%{directive} in {token!r}: {MSG_URI_TEMPLATE}")
        out.append(instant.astimezone(zone).strftime(fmt))
    out.append(template[pos:])
    return "".join(out)


def check_uri_template(template: str) -> str:
    """`template` when it renders (pydantic validator shape)."""
    render_uri(template, dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.UTC)
    return template


@dataclass(frozen=True)
class ScheduledJob:
    """A BatchJob of one schedule, as the decisions need it."""

    name: str
    uid: str
    scheduled: dt.datetime | None  # from its annotation; None if someone removed it
    created: str  # creationTimestamp, a fallback order
    phase: str | None
    cancel: bool

    @property
    def active(self) -> bool:
        return self.phase not in TERMINAL_PHASES

    def order(self) -> tuple[str, str, str]:
        scheduled = format_time(self.scheduled) if self.scheduled else ""
        return (scheduled or self.created, self.created, self.name)


Action = Literal["create", "skip"]


@dataclass(frozen=True)
class ConcurrencyDecision:
    action: Action
    cancel: tuple[str, ...] = ()  # jobs to cancel first (Replace)
    reason: str = ""


def concurrency_decision(
    policy: str, jobs: Iterable[ScheduledJob], noun: str = "BatchJob"
) -> ConcurrencyDecision:
    """Allow creates regardless; Forbid skips while a job of the schedule is not finished;
    Replace cancels the unfinished ones (those not cancelled yet) and creates. `noun` names
    the kind in the reason (BatchJob, PipelineRun: the same phases and `spec.cancel`)."""
    active = sorted((j for j in jobs if j.active), key=ScheduledJob.order)
    if not active or policy == "Allow":
        return ConcurrencyDecision("create")
    names = ", ".join(j.name for j in active)
    if policy == "Forbid":
        return ConcurrencyDecision("skip", reason=f"{noun} {names} still running")
    return ConcurrencyDecision(
        "create", cancel=tuple(j.name for j in active if not j.cancel), reason=f"replacing {names}"
    )


def history_deletions(
    jobs: Sequence[ScheduledJob], succeeded_limit: int, failed_limit: int
) -> list[ScheduledJob]:
    """The oldest finished jobs past each limit (Succeeded; Failed and Cancelled together)."""
    doomed: list[ScheduledJob] = []
    for phases, limit in (
        ({"Succeeded"}, succeeded_limit),
        ({"Failed", "Cancelled"}, failed_limit),
    ):
        done = sorted((j for j in jobs if j.phase in phases), key=ScheduledJob.order)
        doomed += done[: max(0, len(done) - limit)]
    return doomed
