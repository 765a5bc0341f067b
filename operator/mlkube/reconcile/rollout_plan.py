"""The rollout state machine (pure, injected clock): one tick from observations to a new status.

docs/rollouts.md §2, §4, §5, §7. A rollout is identified by its revision (a hash of what it
rolls); a new revision starts a new rollout from the split running now, except on a first
deploy (nothing applied yet) which promotes at once. Each tick folds in the measurements that
were due, handles at most one CLI request (once per id, only for the current revision), runs
the steps (reconcile/rollout_steps), scales an aborted candidate down after its delay, and says
which Events to post and when to tick again (the endpoint's conditions follow from the status:
builders/endpoint_rollout_status). The controller
does the I/O: it measures `due_metrics`, applies `rollout_split.running_split` and reports
whether the routers serve it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from mlkube.api.common import bound_message
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.rollout_status import RolloutAbort, RolloutRequest, RolloutStatus
from mlkube.reconcile.drift_episodes import parse_time
from mlkube.reconcile.rollout_analysis import is_due, stamp, start_metric
from mlkube.reconcile.rollout_measure import RawMeasurement
from mlkube.reconcile.rollout_split import running_split, scale_down_at, start_traffic
from mlkube.reconcile.rollout_steps import (
    RolloutEvent,
    abort,
    definitions,
    enter,
    pause_end,
    plan_of,
    promote,
    run,
    split_text,
    step_reason,
    where,
)

TICK: Final = 5.0
MAX_EVENT: Final = 1024  # events.k8s.io note limit
MIN_TICK: Final = 0.2


@dataclass(frozen=True)
class Observations:
    """What the controller saw this tick.

    applied_traffic: status.traffic (empty: the endpoint never applied traffic — first deploy).
    split_applied: the routers serve running_split(spec, previous status.rollout, now).
    measurements: metric name → what its provider measured (for the metrics that were due).
    """

    applied_traffic: Mapping[str, int] = field(default_factory=dict)
    candidate_available: bool = False
    split_applied: bool = False
    measurements: Mapping[str, RawMeasurement] = field(default_factory=dict)
    request: RolloutRequest | None = None


@dataclass(frozen=True)
class RolloutPlan:
    """The tick's outcome: the new status.rollout (None: no rollout), Events to post,
    seconds until the next tick (None: no loop needed), and the metrics
    that started this tick (`fresh`: take their router baseline now, so the first measurement
    covers traffic at the step's split only)."""

    rollout: RolloutStatus | None
    events: tuple[RolloutEvent, ...] = ()
    delay: float | None = None
    fresh: tuple[str, ...] = ()


def revision(spec: OnlineEndpointSpec) -> str:
    """sha256 over spec.rollout, spec.traffic, spec.mirror, the candidate deployment's spec and
    the stable's name. Defaults are left out, so an operator upgrade that adds a defaulted
    field does not restart every rollout."""
    plan = plan_of(spec)
    candidate = next((d for d in spec.deployments if d.name == plan.candidate), None)
    doc = {
        "rollout": plan.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        "traffic": spec.traffic, "mirror": spec.mirror, "stable": plan.stable,
        "candidate": candidate.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if candidate is not None else None,
    }  # fmt: skip
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _keys(rollout: RolloutStatus) -> dict[tuple[str, bool, int], str]:
    """Each metric run of a rollout: (name, background, step index or -1) → phase."""
    return {
        (m.name, m.background, -1 if m.background else rollout.step_index): m.phase
        for m in rollout.metrics
    }


def fresh_metrics(previous: RolloutStatus | None, new: RolloutStatus | None) -> tuple[str, ...]:
    """Names of the metrics that started between two statuses (a new rollout, a new analysis
    step, the background analysis reaching its step, a background metric started afresh)."""
    if new is None or new.phase not in ("Progressing", "Paused"):
        return ()
    same = previous is not None and (previous.revision, previous.started_at) == (
        new.revision,
        new.started_at,
    )
    before = _keys(previous) if same and previous is not None else {}
    running = [k for k, phase in _keys(new).items() if phase == "Running"]
    return tuple(sorted({k[0] for k in running if before.get(k) != "Running"}))


def due_metrics(rollout: RolloutStatus | None, now: dt.datetime) -> tuple[str, ...]:
    """Names of the metrics to measure now (a name in a step and in the background is one
    measurement, folded into both)."""
    if rollout is None or rollout.phase not in ("Progressing", "Paused"):
        return ()
    return tuple(sorted({m.name for m in rollout.metrics if is_due(m, now)}))


def _new(
    spec: OnlineEndpointSpec, rev: str, applied: Mapping[str, int], now: dt.datetime,
    last_request: str | None,
) -> RolloutStatus:  # fmt: skip
    plan = plan_of(spec)
    return RolloutStatus(
        revision=rev, phase="Progressing", reason="WaitingForCandidate",
        message=f"waiting for candidate {plan.candidate} to be available", step_index=0,
        steps=len(plan.steps), step_started_at=stamp(now), started_at=stamp(now),
        start_traffic=start_traffic(spec, applied), last_request=last_request,
    )  # fmt: skip


def _initial(
    spec: OnlineEndpointSpec, rev: str, now: dt.datetime, last: str | None
) -> RolloutStatus:
    candidate = plan_of(spec).candidate
    return RolloutStatus(
        revision=rev, phase="Promoted", reason="InitialDeploy",
        message="first deploy: the spec's split applies at once", step_index=0,
        steps=len(plan_of(spec).steps), started_at=stamp(now), finished_at=stamp(now),
        start_traffic=dict(spec.traffic), weight=spec.traffic.get(candidate, 0),
        mirror=spec.mirror.get(candidate, 0), last_request=last,
    )  # fmt: skip


def _request(
    spec: OnlineEndpointSpec, status: RolloutStatus, request: RolloutRequest, now: dt.datetime,
    events: list[RolloutEvent],
) -> RolloutStatus:  # fmt: skip
    status = status.model_copy(update={"last_request": request.id})
    if request.revision != status.revision:
        message = (
            f"rollout request {request.action} ({request.id}) is for revision"
            f" {request.revision[:19]}, the rollout is at {status.revision[:19]}: ignored"
        )
        events.append(RolloutEvent("Warning", "RolloutRequestIgnored", message))
        return status
    active = status.phase in ("Progressing", "Paused")
    if request.action == "abort" and active:
        cause = RolloutAbort(message=f"abort requested ({request.id})")
        return abort(spec, status, now, "ManualAbort", cause, events)
    if request.action == "retry" and status.phase == "Aborted":
        message = f"{_started(spec, status)} again (retry {request.id})"
        events.append(RolloutEvent("Normal", "RolloutStarted", message))
        return _new(spec, status.revision, status.start_traffic, now, request.id)
    if request.action == "promote-full" and status.phase != "Promoted":
        return promote(spec, status, now, "PromotedFull", events)
    if request.action == "promote" and active and status.reason != "WaitingForCandidate":
        return _continue(spec, status, now, events)
    message = (
        f"rollout request {request.action} ({request.id}) does nothing in phase {status.phase}"
    )
    if status.reason == "WaitingForCandidate":
        message += " while waiting for the candidate"
    events.append(RolloutEvent("Normal", "RolloutRequestIgnored", message))
    return status


def _continue(
    spec: OnlineEndpointSpec, status: RolloutStatus, now: dt.datetime, events: list[RolloutEvent]
) -> RolloutStatus:
    """promote: past a pause or an inconclusive step to the next step; a pause caused only by
    an inconclusive background metric resumes the current step with that metric started
    afresh."""
    defs = definitions(spec)
    step_inconclusive = any(m.phase == "Inconclusive" and not m.background for m in status.metrics)
    metrics = [
        start_metric(defs[m.name], now, background=True)
        if m.background and m.phase == "Inconclusive" and m.name in defs else m
        for m in status.metrics
    ]  # fmt: skip
    status = status.model_copy(update={"metrics": metrics})
    if status.phase == "Paused" and status.reason == "Inconclusive" and not step_inconclusive:
        step = plan_of(spec).steps[status.step_index]
        message = f"{where(status)}: {step.describe()}, resumed by promote"
        events.append(RolloutEvent("Normal", "RolloutStep", message))
        update = {"phase": "Progressing", "reason": step_reason(step), "message": message}
        return status.model_copy(update=update)
    return enter(spec, status, status.step_index + 1, now, events)


def next_delay(
    spec: OnlineEndpointSpec, rollout: RolloutStatus | None, now: dt.datetime
) -> float | None:
    """Seconds until the next tick: the earliest of the next measurement, the pause's end and
    TICK while the rollout runs; the scale-down after an abort; None when nothing is left."""
    if rollout is None or spec.rollout is None:
        return None
    times: list[dt.datetime] = []
    if rollout.phase in ("Progressing", "Paused"):
        times.append(now + dt.timedelta(seconds=TICK))
        times += [
            t
            for m in rollout.metrics
            if m.phase == "Running"
            if (t := parse_time(m.next_measurement_at))
        ]
        times += [t for t in (pause_end(spec, rollout),) if t is not None]
    elif rollout.phase == "Aborted" and not rollout.scaled_down:
        times += [t for t in (scale_down_at(spec, rollout),) if t is not None]
    if not times:
        return None
    return max((min(times) - now).total_seconds(), MIN_TICK)


def advance(
    spec: OnlineEndpointSpec, previous: RolloutStatus | None, seen: Observations, now: dt.datetime
) -> RolloutPlan:
    """One tick of the rollout (see the module docstring)."""
    if spec.rollout is None:
        return RolloutPlan(None)
    rev = revision(spec)
    events: list[RolloutEvent] = []
    served = running_split(spec, previous, now) if seen.split_applied else None
    status = previous
    if status is None or status.revision != rev:
        last = previous.last_request if previous is not None else None
        if not seen.applied_traffic:
            status = _initial(spec, rev, now, last)
            return RolloutPlan(status, (), None)
        status = _new(spec, rev, seen.applied_traffic, now, last)
        events.append(RolloutEvent("Normal", "RolloutStarted", _started(spec, status)))
        served = None  # what the routers serve belongs to the previous rollout
    if seen.request is not None and seen.request.id != status.last_request:
        status = _request(spec, status, seen.request, now, events)
    if status.phase in ("Progressing", "Paused"):
        status = run(spec, status, seen.measurements, served, seen.candidate_available, now, events)
    at = scale_down_at(spec, status)
    if status.phase == "Aborted" and not status.scaled_down and at is not None and now >= at:
        status = status.model_copy(update={"scaled_down": True})
    status = status.model_copy(update={"message": bound_message(status.message)})
    delay = next_delay(spec, status, now)
    fresh = fresh_metrics(previous, status)
    posted = tuple(
        RolloutEvent(e.type, e.reason, bound_message(e.message, MAX_EVENT)) for e in events
    )
    return RolloutPlan(status, posted, delay, fresh)


def _started(spec: OnlineEndpointSpec, status: RolloutStatus) -> str:
    plan = plan_of(spec)
    return (
        f"rollout of {plan.candidate} over {plan.stable} started: {len(plan.steps)} steps"
        f" from {split_text(status.start_traffic)}"
    )
