"""Whether a Pipeline trigger starts a run now, and under which name (pure; the clock is an
argument). docs/pipelines.md §5.

onDrift fires once per drift episode: when the endpoint deployment's episode is active and
started after the episode that last fired (`lastEpisode`). It is refused — the refusal is the
trigger's status message and an Event, and the episode fires later if it is still active —
while a run of this trigger is active (never two at once), within `cooldown` of the last run,
or once `maxRunsPerDay` runs started on the current UTC day (the count resets at midnight UTC;
`dayStarted` is that midnight). onNewData fires when the prefix's content digest differs from
the last one recorded; the first observation only records it, and an active run of the trigger
defers the change (the digest is not recorded, so it fires when that run ends).

Run names are a pure function of what fired (`<pipeline>-drift-<hash(trigger, startedAt)>`,
`<pipeline>-data-<hash(trigger, digest)>`, at most 63 characters), created with POST only: a
restarted operator cannot start one episode or one digest twice. Schedules reuse the
BatchEndpoint's decisions unchanged: `batch_schedule.Timing`/`plan_schedule`,
`scheduled_job_name(pipeline, schedule, time)` for the run name, and
`batch_schedule_jobs.concurrency_decision(..., kind="PipelineRun")`/`history_deletions`.

    trigger_state(wire) / TriggerState.to_wire()
    latest_drift_episode(endpoint_status, deployment) -> (deployment, startedAt) | None
    should_fire(pipeline, trigger, endpoint_status, state, active_runs, now) -> TriggerDecision
    on_new_data(pipeline, trigger, state, digest, active_runs, now) -> TriggerDecision
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from mlkube.api.duration import parse_duration
from mlkube.api.pipeline import PipelineTrigger
from mlkube.reconcile.batch_schedule import bounded_name, format_time, parse_time

_HASH: Final = 10


@dataclass(frozen=True)
class TriggerState:
    """One `status.triggers[]` entry."""

    name: str
    last_fired: dt.datetime | None = None
    last_run: str | None = None
    fired_today: int = 0
    day_started: dt.datetime | None = None
    last_digest: str | None = None
    last_episode: dt.datetime | None = None
    message: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "name": self.name,
            "lastFired": format_time(self.last_fired) if self.last_fired else None,
            "lastRun": self.last_run,
            "firedToday": self.fired_today,
            "dayStarted": format_time(self.day_started) if self.day_started else None,
            "lastDigest": self.last_digest,
            "lastEpisode": format_time(self.last_episode) if self.last_episode else None,
            "message": self.message,
        }
        return {k: v for k, v in wire.items() if v is not None}


def trigger_state(name: str, wire: Mapping[str, Any] | None) -> TriggerState:
    """The status entry of trigger `name` (a fresh one when absent)."""
    w = wire or {}
    return TriggerState(
        name=name,
        last_fired=parse_time(w.get("lastFired")),
        last_run=w.get("lastRun"),
        fired_today=int(w.get("firedToday") or 0),
        day_started=parse_time(w.get("dayStarted")),
        last_digest=w.get("lastDigest"),
        last_episode=parse_time(w.get("lastEpisode")),
        message=w.get("message"),
    )


@dataclass(frozen=True)
class TriggerDecision:
    """`run_name` set: create that run (with `detail` in spec.trigger.detail) and write
    `state`; `refusal` set: record it (message + Event); neither: nothing new happened."""

    state: TriggerState
    run_name: str | None = None
    detail: str | None = None
    refusal: str | None = None


def _token(trigger: str, what: str) -> str:
    return hashlib.sha256(f"{trigger}\0{what}".encode()).hexdigest()[:_HASH]


def _today(state: TriggerState, now: dt.datetime) -> TriggerState:
    """The state with its day window moved to today's UTC midnight (count reset) if needed."""
    midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if state.day_started == midnight:
        return state
    return replace(state, day_started=midnight, fired_today=0)


def _fired(state: TriggerState, name: str, detail: str, now: dt.datetime) -> TriggerDecision:
    fired = replace(
        state, last_fired=now, last_run=name, fired_today=state.fired_today + 1, message=None
    )
    return TriggerDecision(fired, run_name=name, detail=detail)


def latest_drift_episode(
    endpoint_status: Mapping[str, Any] | None, deployment: str | None
) -> tuple[str, dt.datetime] | None:
    """The most recently started active drift episode of the deployment (any deployment when
    None): (deployment name, startedAt)."""
    found: list[tuple[dt.datetime, str]] = []
    for dep in (endpoint_status or {}).get("deployments") or []:
        if deployment is not None and dep.get("name") != deployment:
            continue
        episode = (dep.get("drift") or {}).get("episode") or {}
        started = parse_time(episode.get("startedAt"))
        if episode.get("active") and started is not None:
            found.append((started, str(dep.get("name"))))
    if not found:
        return None
    started, name = max(found)
    return name, started


def should_fire(
    pipeline: str,
    trigger: PipelineTrigger,
    endpoint_status: Mapping[str, Any] | None,
    state: TriggerState,
    active_runs: Sequence[str],
    now: dt.datetime,
) -> TriggerDecision:
    """The onDrift decision for one evaluation (see the module docstring)."""
    drift = trigger.on_drift
    if drift is None:
        raise ValueError(f"trigger {trigger.name} has no onDrift")
    episode = latest_drift_episode(endpoint_status, drift.deployment)
    if episode is None or (state.last_episode is not None and episode[1] <= state.last_episode):
        return TriggerDecision(state)
    deployment, started = episode
    detail = f"drift on {drift.endpoint}/{deployment} since {format_time(started)}"
    state = _today(state, now)
    refusal = None
    cooldown = parse_duration(drift.cooldown)
    if active_runs:
        refusal = f"{detail}: run {', '.join(sorted(active_runs))} of this trigger is active"
    elif state.last_fired is not None and now < state.last_fired + cooldown:
        refusal = (
            f"{detail}: in cooldown ({drift.cooldown}) until "
            f"{format_time(state.last_fired + cooldown)}"
        )
    elif state.fired_today >= drift.max_runs_per_day:
        refusal = (
            f"{detail}: {state.fired_today} runs today already (maxRunsPerDay "
            f"{drift.max_runs_per_day}; the count resets at 00:00 UTC)"
        )
    if refusal is not None:
        return TriggerDecision(replace(state, message=refusal), refusal=refusal)
    name = bounded_name(pipeline, "drift", _token(trigger.name, format_time(started)))
    return _fired(replace(state, last_episode=started), name, detail, now)


def on_new_data(
    pipeline: str,
    trigger: PipelineTrigger,
    state: TriggerState,
    digest: str,
    active_runs: Sequence[str],
    now: dt.datetime,
) -> TriggerDecision:
    """The onNewData decision for a freshly computed content digest of the prefix."""
    data = trigger.on_new_data
    if data is None:
        raise ValueError(f"trigger {trigger.name} has no onNewData")
    if state.last_digest == digest:
        return TriggerDecision(state)
    if state.last_digest is None:
        recorded = replace(state, last_digest=digest, message=f"watching {data.uri} ({digest})")
        return TriggerDecision(recorded)
    detail = f"new data under {data.uri}: {digest}"
    if active_runs:
        refusal = f"{detail}: run {', '.join(sorted(active_runs))} of this trigger is active"
        return TriggerDecision(replace(state, message=refusal), refusal=refusal)
    name = bounded_name(pipeline, "data", _token(trigger.name, digest))
    return _fired(replace(_today(state, now), last_digest=digest), name, detail, now)
