"""The rollout's step machine (pure): enter a step, run it until it completes, promote, abort.

docs/rollouts.md §2. reconcile/rollout_plan drives it once per tick. Each function takes the
working status and returns the next one, appending the Events it implies to `events`. Analysis
metrics are folded by reconcile/rollout_analysis; a Failed or Error metric (a step's or a
background one) aborts at once, an Inconclusive one pauses for a human.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from mlkube.api.common import bound_message
from mlkube.api.duration import parse_duration
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.rollout import RolloutMetric, RolloutSpec, RolloutStep
from mlkube.api.rollout_status import RolloutAbort, RolloutMetricStatus, RolloutStatus
from mlkube.reconcile.drift_episodes import parse_time
from mlkube.reconcile.rollout_analysis import (
    is_due,
    record,
    stamp,
    start_metric,
)
from mlkube.reconcile.rollout_cel import ConditionError, check_condition
from mlkube.reconcile.rollout_measure import RawMeasurement
from mlkube.reconcile.rollout_split import RunningSplit, running_split
from mlkube.reconcile.rollout_verdict import verdict


@dataclass(frozen=True)
class RolloutEvent:
    """A Kubernetes Event to post on the endpoint."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def plan_of(spec: OnlineEndpointSpec) -> RolloutSpec:
    assert spec.rollout is not None
    return spec.rollout


def definitions(spec: OnlineEndpointSpec) -> dict[str, RolloutMetric]:
    """The rollout's metrics by name."""
    return {m.name: m for m in plan_of(spec).metrics}


def split_text(split: Mapping[str, int]) -> str:
    """`{blue: 90, green: 10}`: name order, zero shares left out."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(split.items()) if v > 0) + "}"


def step_reason(step: RolloutStep) -> str:
    """status.rollout.reason while a step runs (pause_end relies on "Pause")."""
    if step.set_weight is not None:
        return "SetWeight"
    if step.set_mirror is not None:
        return "SetMirror"
    return "Pause" if step.pause is not None else "StepAnalysis"


def where(status: RolloutStatus) -> str:
    return f"step {status.step_index + 1}/{status.steps}"


def _start_background(
    spec: OnlineEndpointSpec, status: RolloutStatus, now: dt.datetime
) -> RolloutStatus:
    background = plan_of(spec).background_analysis
    if background is None or status.step_index < background.starting_step:
        return status
    if any(m.background for m in status.metrics):
        return status
    defs = definitions(spec)
    fresh = [start_metric(defs[n], now, background=True) for n in background.metrics if n in defs]
    return status.model_copy(update={"metrics": [*status.metrics, *fresh]})


def enter(
    spec: OnlineEndpointSpec, status: RolloutStatus, index: int, now: dt.datetime,
    events: list[RolloutEvent],
) -> RolloutStatus:  # fmt: skip
    """Step `index` starts now (or the rollout promotes when there is none left)."""
    plan = plan_of(spec)
    if index >= len(plan.steps):
        return promote(spec, status, now, "Promoted", events)
    step = plan.steps[index]
    kept = [m for m in status.metrics if m.background]
    update: dict[str, object] = {
        "phase": "Progressing", "step_index": index, "step_started_at": stamp(now),
        "metrics": kept, "reason": step_reason(step),
    }  # fmt: skip
    if step.set_weight is not None:
        update.update(weight=step.set_weight, mirror=0)
    elif step.set_mirror is not None:
        update.update(weight=0, mirror=step.set_mirror)
    elif step.pause is not None:
        update.update(phase="Progressing" if step.pause.duration else "Paused")
    elif step.analysis is not None:
        defs = definitions(spec)
        fresh = [
            start_metric(defs[n], now, background=False) for n in step.analysis.metrics if n in defs
        ]
        update.update(metrics=[*kept, *fresh])
    status = status.model_copy(update=update)
    status = status.model_copy(update={"message": f"{where(status)}: {step.describe()}"})
    events.append(RolloutEvent("Normal", "RolloutStep", status.message))
    if status.phase == "Paused":
        message = f"{where(status)}: paused until `mlkube endpoint rollout promote`"
        status = status.model_copy(update={"message": message})
        events.append(RolloutEvent("Normal", "RolloutPaused", message))
    return _start_background(spec, status, now)


def promote(
    spec: OnlineEndpointSpec, status: RolloutStatus, now: dt.datetime, reason: str,
    events: list[RolloutEvent],
) -> RolloutStatus:  # fmt: skip
    """The spec's split runs from now on; the analysis stops."""
    candidate = plan_of(spec).candidate
    stopped = [m.model_copy(update={"next_measurement_at": None}) for m in status.metrics]
    message = f"rollout promoted: running {split_text(spec.traffic)}"
    if spec.mirror:
        message += f", mirror {split_text(spec.mirror)}"
    events.append(RolloutEvent("Normal", "RolloutPromoted", message))
    return status.model_copy(
        update={
            "phase": "Promoted", "reason": reason, "message": message,
            "finished_at": stamp(now), "weight": spec.traffic.get(candidate, 0),
            "mirror": spec.mirror.get(candidate, 0), "metrics": stopped, "abort": None,
            "scaled_down": False,
        }
    )  # fmt: skip


def abort(
    spec: OnlineEndpointSpec, status: RolloutStatus, now: dt.datetime, reason: str,
    record_: RolloutAbort, events: list[RolloutEvent],
) -> RolloutStatus:  # fmt: skip
    """Traffic back to startTraffic at once; spec stays as GitOps wrote it."""
    stopped = [m.model_copy(update={"next_measurement_at": None}) for m in status.metrics]
    aborted = status.model_copy(
        update={"phase": "Aborted", "reason": reason, "finished_at": stamp(now),
                "weight": 0, "mirror": 0, "metrics": stopped, "scaled_down": False}
    )  # fmt: skip
    running = running_split(spec, aborted, now).traffic
    message = bound_message(
        f"rollout aborted: {record_.message}; spec wants {split_text(spec.traffic)},"
        f" running {split_text(running)}"
    )
    events.append(RolloutEvent("Warning", "RolloutAborted", message))
    return aborted.model_copy(
        update={"message": message, "abort": record_.model_copy(update={"message": message})}
    )


def _measure(
    spec: OnlineEndpointSpec, status: RolloutStatus, measurements: Mapping[str, RawMeasurement],
    now: dt.datetime,
) -> RolloutStatus:  # fmt: skip
    defs = definitions(spec)
    metrics: list[RolloutMetricStatus] = []
    for metric in status.metrics:
        raw = measurements.get(metric.name)
        if raw is not None and metric.name in defs and is_due(metric, now):
            metric = record(defs[metric.name], metric, raw, now)
        metrics.append(metric)
    return status.model_copy(update={"metrics": metrics})


def _verdicts(
    spec: OnlineEndpointSpec, status: RolloutStatus, now: dt.datetime, events: list[RolloutEvent]
) -> RolloutStatus:
    """Abort on a Failed/Error metric; pause on an Inconclusive one."""
    defs = definitions(spec)
    for phases, action in ((("Failed", "Error"), "abort"), (("Inconclusive",), "pause")):
        bad = next((m for m in status.metrics if m.phase in phases and m.name in defs), None)
        if bad is None:
            continue
        why = verdict(defs[bad.name], bad)
        if action == "abort":
            cause = RolloutAbort(
                metric=bad.name, value=why.value, condition=why.condition, message=why.text
            )
            return abort(spec, status, now, "AnalysisFailed", cause, events)
        if status.phase != "Paused":
            message = f"{where(status)}: paused: {why.text}"
            events.append(RolloutEvent("Normal", "RolloutPaused", message))
            return status.model_copy(
                update={"phase": "Paused", "reason": "Inconclusive", "message": message}
            )
        return status
    return status


def pause_end(spec: OnlineEndpointSpec, status: RolloutStatus) -> dt.datetime | None:
    """When the current timed pause ends (None: not in a timed pause)."""
    steps = plan_of(spec).steps
    if status.reason != "Pause" or status.phase != "Progressing" or status.step_index >= len(steps):
        return None
    pause = steps[status.step_index].pause
    started = parse_time(status.step_started_at)
    if pause is None or pause.duration is None or started is None:
        return None
    return started + parse_duration(pause.duration)


def _done(
    spec: OnlineEndpointSpec, status: RolloutStatus, served: RunningSplit | None, now: dt.datetime
) -> tuple[bool, str]:
    """Whether the current step is complete, else what it waits for."""
    step = plan_of(spec).steps[status.step_index]
    if step.set_weight is not None or step.set_mirror is not None:
        done = served is not None and served == running_split(spec, status, now)
        return done, "waiting for the routers to serve the split"
    if step.pause is not None:
        end = pause_end(spec, status)
        return end is not None and now >= end, f"until {stamp(end) if end else 'promoted'}"
    if step.analysis is not None:
        mine = [m for m in status.metrics if not m.background]
        progress = ", ".join(f"{m.name} {m.count}/{_count(spec, m.name)}" for m in mine)
        return all(m.phase == "Successful" for m in mine), f"{progress} measurements"
    return True, ""


def uncompilable(spec: OnlineEndpointSpec) -> RolloutAbort | None:
    """The first metric condition that does not compile (the API server cannot check CEL held
    in a string): the rollout aborts before its candidate gets any traffic, rather than
    measuring Errors for consecutiveErrorLimit intervals at its first step's weight."""
    for metric in plan_of(spec).metrics:
        for condition in (metric.success_condition, metric.failure_condition):
            try:
                if condition is not None:
                    check_condition(condition)
            except ConditionError as err:
                text = f"metric {metric.name}: {err}"
                return RolloutAbort(metric=metric.name, condition=condition, message=text)
    return None


def _count(spec: OnlineEndpointSpec, name: str) -> str:
    count = definitions(spec)[name].count
    return str(count) if count > 0 else "∞"


def run(
    spec: OnlineEndpointSpec, status: RolloutStatus, measurements: Mapping[str, RawMeasurement],
    served: RunningSplit | None, candidate_available: bool, now: dt.datetime,
    events: list[RolloutEvent],
) -> RolloutStatus:  # fmt: skip
    """Fold the measurements in, then advance through every step that completes now.

    `served` is the split the routers serve (None: unknown or not the one asked for)."""
    status = _measure(spec, status, measurements, now)
    for _ in range(len(plan_of(spec).steps) + 2):
        status = _verdicts(spec, status, now, events)
        if status.phase != "Progressing":
            return status
        if status.reason == "WaitingForCandidate":
            if (invalid := uncompilable(spec)) is not None:
                return abort(spec, status, now, "InvalidCondition", invalid, events)
            if not candidate_available:
                message = f"waiting for candidate {plan_of(spec).candidate} to be available"
                return status.model_copy(update={"message": message})
            status = enter(spec, status, 0, now, events)
            continue
        done, waiting = _done(spec, status, served, now)
        if not done:
            step = plan_of(spec).steps[status.step_index].describe()
            return status.model_copy(update={"message": f"{where(status)}: {step}, {waiting}"})
        status = enter(spec, status, status.step_index + 1, now, events)
    return status
