"""One evaluation of a Pipeline's triggers: onDrift reads the OnlineEndpoint's drift episodes,
onNewData lists its prefix; both start a PipelineRun through a POST-only, deterministic name.
Decisions are in reconcile/pipeline_trigger.py; this module reads, creates and reports.

Every decision is recorded in the trigger's status entry (`message`) and as an Event
(TriggerFired, TriggerSuppressed with the reason, TriggerFailed); a refusal that does not
change is not posted again on every pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.common import bound_message
from mlkube.api.duration import parse_duration
from mlkube.api.pipeline import PipelineSpec
from mlkube.api.pipeline_triggers import PipelineTrigger
from mlkube.builders.pipeline_conditions import Problem
from mlkube.builders.pipeline_trigger_run import (
    PipelineRef,
    RunFacts,
    build_run,
    data_run_name,
    drift_run_name,
    source_labels,
)
from mlkube.controllers.kube import ApiError, Kube
from mlkube.controllers.pipeline_store import StoreUnreadable
from mlkube.reconcile.batch_schedule import format_time
from mlkube.reconcile.pipeline_trigger import (
    Episode,
    FireState,
    PastRun,
    data_verdict,
    drift_verdict,
    newest_episode,
    parse_stamp,
)

NORMAL: Final = "Normal"
WARNING: Final = "Warning"
DATA_DIGEST_PARAMETER: Final = "dataDigest"
MIN_POLL: Final = 1.0  # seconds: a `1ms` pollInterval still leaves the store alone
Event = tuple[str, str, str]
# (uri) -> content digest; raises StoreUnreadable when the store cannot be read.
DigestOf = Callable[[str], str]


@dataclass
class TriggerResult:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    wake: float | None = None  # seconds until this trigger wants another look


@dataclass
class Polls:
    """When each onNewData trigger last listed its prefix (process memory: a restarted
    operator polls at once, which is harmless)."""

    last: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)


def _past_runs(runs: Sequence[RunFacts], trigger: str) -> list[PastRun]:
    return [PastRun(r.name, parse_stamp(r.created), r.active) for r in runs if r.trigger == trigger]


def _create(kube: Kube, body: dict[str, Any]) -> bool:
    """POST the run; False when its name exists already (fired before: the name is the guard)."""
    try:
        kube.create(body)
    except ApiError as err:
        if err.status != 409:
            raise
        return False
    return True


def _endpoint_episodes(
    endpoint: Mapping[str, Any] | None, trigger: PipelineTrigger
) -> tuple[list[Episode], Problem | None]:
    """The active drift episodes the trigger watches, or why it cannot watch any."""
    assert trigger.on_drift is not None
    wanted, name = trigger.on_drift.deployment, trigger.on_drift.endpoint
    where = f"trigger {trigger.name}: OnlineEndpoint {name}"
    if endpoint is None:
        return [], Problem("EndpointNotFound", f"{where} does not exist")
    deployments = (endpoint.get("spec") or {}).get("deployments") or []
    spec_deps = {str(d.get("name")): d for d in deployments}
    if wanted is not None and wanted not in spec_deps:
        return [], Problem("DeploymentNotFound", f"{where} has no deployment {wanted}")
    monitored = [n for n, d in spec_deps.items() if (d.get("drift") or {}).get("enabled")]
    if (wanted is not None and wanted not in monitored) or not monitored:
        which = f"deployment {wanted} has no" if wanted else "no deployment has"
        return [], Problem("DriftNotEnabled", f"{where}: {which} drift.enabled")
    episodes = []
    for dep in (endpoint.get("status") or {}).get("deployments") or []:
        episode = (dep.get("drift") or {}).get("episode") or {}
        started = parse_stamp(episode.get("startedAt"))
        if wanted not in (None, dep.get("name")) or not episode.get("active") or started is None:
            continue
        episodes.append(Episode(str(dep.get("name")), started))
    return episodes, None


def run_drift(
    kube: Kube,
    owner: PipelineRef,
    trigger: PipelineTrigger,
    endpoint: Mapping[str, Any] | None,
    previous: Mapping[str, Any],
    runs: Sequence[RunFacts],
    now: dt.datetime,
) -> TriggerResult:
    assert trigger.on_drift is not None
    on = trigger.on_drift
    result = TriggerResult(status={"name": trigger.name, **previous})
    episodes, problem = _endpoint_episodes(endpoint, trigger)
    if problem is not None:
        result.problems.append(problem)
        return result
    state = FireState.of(dict(previous))
    past = _past_runs(runs, trigger.name)
    latest = newest_episode(episodes, state.last_episode)
    if latest is None:
        if not previous.get("message"):  # else the last decision stays visible
            which = f" deployment {on.deployment}" if on.deployment else ""
            result.status["message"] = f"watching OnlineEndpoint {on.endpoint}{which} for drift"
        return result
    started = format_time(latest.started_at)
    name = drift_run_name(owner.name, trigger.name, started)
    about = f"endpoint {on.endpoint} deployment {latest.deployment} drift episode started {started}"
    if any(r.name == name for r in past):  # fired already, its status write lost: record it
        _record_fire(result, state, name, now, created=False)
        result.status["lastEpisode"] = started
        return result
    verdict = drift_verdict(
        episodes=episodes, state=state, runs=past, cooldown=parse_duration(on.cooldown),
        max_per_day=on.max_runs_per_day, now=now,
    )  # fmt: skip
    if verdict.action == "refuse":
        if verdict.retry_at is not None:
            result.wake = max((verdict.retry_at - now).total_seconds(), MIN_POLL)
        _decided(
            result, previous, trigger, "TriggerSuppressed", f"suppressed: {about}: {verdict.reason}"
        )
        return result
    body = build_run(
        owner, name=name, parameters=trigger.parameters,
        trigger={"type": "drift", "name": trigger.name, "detail": bound_message(about, 1024)},
        labels=source_labels(owner.name, trigger=trigger.name),
    )  # fmt: skip
    _fired(kube, result, previous, trigger, body, about, now)
    result.status["lastEpisode"] = started
    return result


def _decided(
    result: TriggerResult, previous: Mapping[str, Any], trigger: PipelineTrigger, reason: str,
    message: str, type_: str = NORMAL,
) -> None:  # fmt: skip
    """Record the decision; post its Event only when the message is new (no repeat per pass)."""
    message = bound_message(message)
    result.status["message"] = message
    if message != str(previous.get("message") or ""):
        result.events.append((type_, reason, f"trigger {trigger.name} {message}"))


def _fired(
    kube: Kube, result: TriggerResult, previous: Mapping[str, Any], trigger: PipelineTrigger,
    body: dict[str, Any], about: str, now: dt.datetime,
) -> None:  # fmt: skip
    """Create the run and record the fire (a 409: started before, recorded without an Event)."""
    name = str(body["metadata"]["name"])
    created = _create(kube, body)
    _record_fire(result, FireState.of(dict(previous)), name, now, created)
    message = f"fired: {about}: run {name}"
    if created:
        _decided(result, previous, trigger, "TriggerFired", message)
    else:
        result.status["message"] = f"{message} (already started)"


def _record_fire(
    result: TriggerResult, state: FireState, name: str, now: dt.datetime, created: bool
) -> None:
    if not created and result.status.get("lastRun") == name:
        return  # this very fire is recorded already
    after = state.after_fire(now)
    result.status.update(
        lastRun=name,
        lastFired=format_time(after.last_fired or now),
        firedToday=after.fired_today,
        dayStarted=format_time(after.day_started or now),
    )


def run_new_data(
    kube: Kube,
    owner: PipelineRef,
    spec: PipelineSpec,
    trigger: PipelineTrigger,
    previous: Mapping[str, Any],
    digest_of: DigestOf,
    polls: Polls,
    now: dt.datetime,
) -> TriggerResult:
    assert trigger.on_new_data is not None
    on = trigger.on_new_data
    result = TriggerResult(status={"name": trigger.name, **previous})
    interval = max(parse_duration(on.poll_interval).total_seconds(), MIN_POLL)
    key = (owner.uid, trigger.name)
    last_poll = polls.last.get(key)
    if last_poll is not None and (now - last_poll).total_seconds() < interval:
        result.wake = interval - (now - last_poll).total_seconds()
        return result
    polls.last[key] = now
    result.wake = interval
    try:
        digest = digest_of(on.uri)
    except StoreUnreadable as err:  # retried at the next poll
        _decided(
            result, previous, trigger, "TriggerFailed", f"cannot read {on.uri}: {err}", WARNING
        )
        return result
    last = previous.get("lastDigest")
    action = data_verdict(digest, str(last) if last else None)
    if action == "record":
        result.status.update(lastDigest=digest, message=f"first observation of {on.uri}: {digest}")
        return result
    if action == "same":
        return result
    parameters = dict(trigger.parameters)
    if any(p.name == DATA_DIGEST_PARAMETER for p in spec.parameters):
        parameters[DATA_DIGEST_PARAMETER] = digest
    about = f"new data under {on.uri}: {digest} (was {last})"
    body = build_run(
        owner, name=data_run_name(owner.name, trigger.name, str(last), digest),
        parameters=parameters, labels=source_labels(owner.name, trigger=trigger.name),
        trigger={"type": "newData", "name": trigger.name, "detail": bound_message(about, 1024)},
    )  # fmt: skip
    _fired(kube, result, previous, trigger, body, about, now)
    result.status["lastDigest"] = digest
    return result
