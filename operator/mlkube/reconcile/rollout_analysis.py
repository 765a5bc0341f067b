"""One rollout metric's analysis: measurement → phase → counts → verdict (pure, injected clock).

docs/rollouts.md §2 "Analysis runs". A provider (builtin, Prometheus, web) hands in a
`RawMeasurement` (reconcile/rollout_measure); `judge` computes `result` (compare,
minSampleCount) and turns it into a `RolloutMeasurement` with a phase — Error (the provider
failed, or the CEL condition did not evaluate), NoData (no value, fewer than minSampleCount
samples, a ratio over a stable of 0, a value that is not finite), else the CEL verdict — and
`record` folds it into the metric's status: NoData counts as noDataPolicy says (Fail → failed,
Inconclusive → inconclusive, Ignore → nothing: the analysis waits for data), then the metric's
phase follows failureLimit, consecutiveErrorLimit, inconclusiveLimit and count, in that order
of precedence. A metric that is no longer Running never changes again: no later measurement
turns a Failed metric into a passing one.

A metric is first due one interval after it starts. The router metrics (errorRate, latency,
agreement) are windows between two scrapes: the loop takes the baseline scrape as the metric
starts (`RolloutPlan.fresh` names them), so the first measurement covers one interval of
traffic at the step's split. A baseline answer that reaches `record` anyway (the loop lost its
state, e.g. an operator restart) is not counted: the metric is due again one interval later.
The samples of Prometheus and web answers are not counted: minSampleCount applies to builtin
metrics only.

CEL: reconcile/rollout_cel (a condition that does not compile, fails, or is not a bool makes
the measurement Error with celpy's message).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

from mlkube.api.common import bound_message
from mlkube.api.duration import parse_duration
from mlkube.api.rollout import RolloutMetric
from mlkube.api.rollout_status import (
    MeasurementPhase,
    MetricPhase,
    RolloutMeasurement,
    RolloutMetricStatus,
)
from mlkube.reconcile.drift_episodes import format_time, parse_time
from mlkube.reconcile.rollout_cel import ConditionError, check_condition, evaluate
from mlkube.reconcile.rollout_measure import RawMeasurement
from mlkube.reconcile.rollout_verdict import verdict

__all__ = ["ConditionError", "check_condition", "evaluate"]  # re-exported (rollout_cel)

KEPT_MEASUREMENTS: Final = 5


def stamp(now: dt.datetime) -> str:
    """Status times with milliseconds (intervals may be 1 s; whole seconds would drift)."""
    return format_time(now, millis=True) or ""


def interval(metric: RolloutMetric) -> dt.timedelta:
    return max(parse_duration(metric.interval), dt.timedelta(seconds=1))


def compare_of(metric: RolloutMetric) -> str:
    builtin = metric.provider.builtin
    return builtin.compare if builtin is not None else "absolute"


def start_metric(
    metric: RolloutMetric, now: dt.datetime, *, background: bool
) -> RolloutMetricStatus:
    """A fresh Running metric, first due one interval from now."""
    return RolloutMetricStatus(
        name=metric.name,
        background=background,
        phase="Running",
        condition=metric.success_condition,
        failure_condition=metric.failure_condition,
        next_measurement_at=stamp(now + interval(metric)),
    )


def is_due(status: RolloutMetricStatus, now: dt.datetime) -> bool:
    """Running and its next measurement time has come (a damaged time counts as due)."""
    if status.phase != "Running":
        return False
    at = parse_time(status.next_measurement_at)
    return at is None or at <= now


def _no_data(at: str, raw: RawMeasurement, why: str) -> RolloutMeasurement:
    return RolloutMeasurement(
        at=at, phase="NoData", candidate=raw.candidate, stable=raw.stable,
        samples=raw.candidate_samples, message=bound_message(why, 512),
    )  # fmt: skip


def _result(metric: RolloutMetric, raw: RawMeasurement) -> tuple[float | None, str]:
    """(result, "") or (None, why there is no data). Sample counts are checked for builtin
    metrics only; ratio and difference need the stable's samples too; a ratio over a stable
    that measured 0 is undefined."""
    counted = metric.provider.builtin is not None
    least = metric.min_sample_count
    if counted and raw.candidate_samples < least:
        return None, f"{raw.candidate_samples} samples < minSampleCount {least}"
    if raw.candidate is None:
        return None, "no value"
    compare = compare_of(metric)
    if compare == "absolute":
        return raw.candidate, ""
    if counted and raw.stable_samples < least:
        return None, f"stable: {raw.stable_samples} samples < minSampleCount {least}"
    if raw.stable is None:
        return None, "no value for the stable"
    if compare == "difference":
        return raw.candidate - raw.stable, ""
    if raw.stable == 0:
        return None, "the stable measured 0: the ratio is undefined (compare by difference)"
    return raw.candidate / raw.stable, ""


def judge(metric: RolloutMetric, raw: RawMeasurement, now: dt.datetime) -> RolloutMeasurement:
    """One measurement's phase (see the module docstring)."""
    at = stamp(now)
    if raw.error is not None:
        return RolloutMeasurement(at=at, phase="Error", message=bound_message(raw.error, 512))
    result, why = _result(metric, raw)
    if result is None:
        return _no_data(at, raw, "; ".join(w for w in (why, raw.message) if w) or "no value")
    if not math.isfinite(result):
        return _no_data(at, raw, f"the value is {result}, not a finite number")
    phase: MeasurementPhase
    try:
        phase = _phase(metric, result, raw)
    except ConditionError as err:
        return RolloutMeasurement(
            at=at, phase="Error", value=result, candidate=raw.candidate, stable=raw.stable,
            samples=raw.candidate_samples, message=bound_message(str(err), 512),
        )  # fmt: skip
    return RolloutMeasurement(
        at=at, phase=phase, value=result, candidate=raw.candidate, stable=raw.stable,
        samples=raw.candidate_samples,
    )  # fmt: skip


def _phase(metric: RolloutMetric, result: float, raw: RawMeasurement) -> MeasurementPhase:
    args = (result, raw.candidate, raw.stable)
    if metric.failure_condition is not None and evaluate(metric.failure_condition, *args):
        return "Failed"
    if evaluate(metric.success_condition, *args):
        return "Successful"
    return "Inconclusive" if metric.failure_condition is not None else "Failed"


def verdict_phase(metric: RolloutMetric, status: RolloutMetricStatus) -> MetricPhase:
    """The metric's phase from its counts (precedence: Failed, Error, Inconclusive,
    Successful); count 0 never succeeds."""
    if status.failed > metric.failure_limit:
        return "Failed"
    if status.consecutive_errors > metric.consecutive_error_limit:
        return "Error"
    if status.inconclusive > metric.inconclusive_limit:
        return "Inconclusive"
    if metric.count > 0 and status.count >= metric.count:
        return "Successful"
    return "Running"


def record(
    metric: RolloutMetric, status: RolloutMetricStatus, raw: RawMeasurement, now: dt.datetime
) -> RolloutMetricStatus:
    """The metric's status after one more measurement; unchanged once it has a verdict."""
    if status.phase != "Running":
        return status
    if raw.baseline and raw.error is None:  # a window started: measure one interval later
        return status.model_copy(update={"next_measurement_at": stamp(now + interval(metric))})
    measurement = judge(metric, raw, now)
    counts = {
        "count": status.count, "successful": status.successful, "failed": status.failed,
        "inconclusive": status.inconclusive, "errors": status.errors, "no_data": status.no_data,
        "consecutive_errors": 0,
    }  # fmt: skip
    if measurement.phase == "Error":
        counts["errors"] += 1
        counts["consecutive_errors"] = status.consecutive_errors + 1
    elif measurement.phase == "NoData":
        counts["no_data"] += 1
        mapped = {"Fail": "failed", "Inconclusive": "inconclusive"}.get(metric.no_data_policy)
        if mapped is not None:
            counts[mapped] += 1
            counts["count"] += 1
    else:
        counts[measurement.phase.lower()] += 1
        counts["count"] += 1
    updated = status.model_copy(
        update={
            **counts,
            "measurements": [*status.measurements, measurement][-KEPT_MEASUREMENTS:],
            "next_measurement_at": stamp(now + interval(metric)),
        }
    )
    phase = verdict_phase(metric, updated)
    if phase != "Running":
        updated = updated.model_copy(update={"phase": phase, "next_measurement_at": None})
        updated = updated.model_copy(update={"message": verdict(metric, updated).text})
    return updated
