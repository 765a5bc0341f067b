"""Why a rollout metric ended the way it did, in words (pure).

The abort record (`status.rollout.abort`), the Degraded/Stalled message and the Paused message
name the metric, the value measured, the condition and the limit it broke (docs/rollouts.md §2:
"rollout aborted: metric errors measured 0.12, condition result <= 0.01 (failureLimit 0); …"),
so an operator reading `kubectl describe` knows why without the metric's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlkube.api.common import bound_message
from mlkube.api.rollout import RolloutMetric
from mlkube.api.rollout_status import RolloutMetricStatus


@dataclass(frozen=True)
class Verdict:
    """Why a metric ended the way it did, for the abort record and messages."""

    value: float | None
    condition: str | None
    text: str


def _fmt(value: float | None) -> str:
    return "nothing" if value is None else f"{value:.6g}"


def verdict(metric: RolloutMetric, status: RolloutMetricStatus) -> Verdict:
    """What decided the metric's phase, worded for the abort record and the Paused message."""
    last = status.measurements[-1] if status.measurements else None
    value = last.value if last is not None else None
    name = metric.name
    if status.phase in ("Successful", "Running"):
        text = f"metric {name}: {status.successful}/{status.count} measurements successful"
        return Verdict(value, metric.success_condition, f"{text}, last {_fmt(value)}")
    if status.phase == "Error":
        why = last.message if last is not None and last.message else "provider error"
        text = (
            f"metric {name} failed to measure {status.consecutive_errors} times in a row"
            f" (consecutiveErrorLimit {metric.consecutive_error_limit}): {why}"
        )
        return Verdict(value, None, bound_message(text))
    if last is not None and last.phase == "NoData":
        policy = f"noDataPolicy {metric.no_data_policy}"
        limit = (
            f"failureLimit {metric.failure_limit}"
            if status.phase == "Failed"
            else f"inconclusiveLimit {metric.inconclusive_limit}"
        )
        text = f"metric {name} had no data: {last.message} ({policy}, {limit})"
        return Verdict(None, None, bound_message(text))
    if status.phase == "Inconclusive":
        neither = " nor ".join(c for c in (metric.success_condition, metric.failure_condition) if c)
        text = (
            f"metric {name} measured {_fmt(value)}, neither {neither}"
            f" (inconclusiveLimit {metric.inconclusive_limit})"
        )
        return Verdict(value, metric.success_condition, bound_message(text))
    condition = metric.failure_condition or metric.success_condition
    text = (
        f"metric {name} measured {_fmt(value)}, condition {condition}"
        f" (failureLimit {metric.failure_limit})"
    )
    return Verdict(value, condition, bound_message(text))
