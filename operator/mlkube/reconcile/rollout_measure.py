"""What a measurement provider returns, and the built-in metrics computed from it (pure).

A provider never raises into the rollout: it returns a `RawMeasurement` with the candidate's
value (and the stable's, for a relative metric), the sample count behind each, or an `error`
(an Error measurement). Built-in router metrics are windows between two scrapes, so their
state is explicit: `RouterWindowState` is what the controller keeps per (endpoint, metric)
between ticks and passes back in; the first call (no state, or state of other deployments)
only takes the baseline (`RawMeasurement.baseline`: not a measurement, nothing to count).
The analysis (`reconcile/rollout_analysis`) turns a raw measurement into `result` (compare,
minSampleCount) and judges it with CEL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.reconcile.router_counters import Counters, agreement, error_rate, latency_quantile
from mlkube.reconcile.router_counters import window as counter_window

ROUTER_TYPES: Final = frozenset({"errorRate", "latency", "agreement"})
DRIFT_TYPES: Final = frozenset({"inputDrift", "predictionDrift"})
BUILTIN_TYPES: Final = ROUTER_TYPES | DRIFT_TYPES
COMPARES: Final = frozenset({"absolute", "ratio", "difference"})
DRIFT_EVALUATED: Final = "Evaluated"  # builders/endpoint_drift_status: a full, merged window


@dataclass(frozen=True)
class RawMeasurement:
    """One provider answer. `error`: the provider failed (Error). `baseline`: a window only
    started (no measurement). Otherwise a value of None, or fewer samples than the metric's
    minSampleCount, is no data."""

    candidate: float | None = None
    stable: float | None = None
    candidate_samples: int = 0
    stable_samples: int = 0
    error: str | None = None
    baseline: bool = False
    message: str = ""


def provider_error(message: str) -> RawMeasurement:
    return RawMeasurement(error=message)


@dataclass(frozen=True)
class RouterWindowState:
    """The previous scrape of a router metric: counters per router pod (by uid), for the
    deployments it was taken for."""

    deployments: tuple[str, ...]
    pods: Mapping[str, Counters] = field(default_factory=dict)


def window_measure(
    kind: str,
    candidate: str,
    stable: str | None,
    previous: RouterWindowState | None,
    current: RouterWindowState,
    quantile: float | None = None,
) -> RawMeasurement:
    """The router metric `kind` over the window previous -> current (stable only when given)."""
    if previous is None or previous.deployments != current.deployments:
        pods = len(current.pods)
        return RawMeasurement(baseline=True, message=f"baseline taken from {pods} router pods")
    delta, pods = counter_window(previous.pods, current.pods)
    if pods == 0:
        return RawMeasurement(message="no router pod was scraped both times: no window")

    def one(deployment: str) -> tuple[float | None, int]:
        if kind == "errorRate":
            return error_rate(delta, deployment)
        if kind == "latency":
            return latency_quantile(delta, deployment, quantile if quantile is not None else 0.5)
        return agreement(delta, deployment)

    value, samples = one(candidate)
    what = f"{kind} over {pods} router pods"
    if stable is None:
        return RawMeasurement(candidate=value, candidate_samples=samples, message=what)
    stable_value, stable_samples = one(stable)
    return RawMeasurement(value, stable_value, samples, stable_samples, message=what)


def _drift_of(status: Mapping[str, Any], deployment: str) -> Mapping[str, Any] | None:
    for entry in status.get("deployments") or []:
        if isinstance(entry, Mapping) and entry.get("name") == deployment:
            drift = entry.get("drift")
            return drift if isinstance(drift, Mapping) else None
    return None


def drift_value(
    status: Mapping[str, Any], deployment: str, kind: str
) -> tuple[float | None, int, str]:
    """(value, samples, why) of inputDrift (driftedRatio) or predictionDrift (1.0 drifted,
    0.0 not) from the endpoint status; no data unless the last evaluation had a full window."""
    drift = _drift_of(status, deployment)
    if drift is None:
        return None, 0, f"deployment {deployment} reports no drift (drift monitoring off?)"
    reason = str(drift.get("reason") or "")
    if reason != DRIFT_EVALUATED:
        return None, 0, f"deployment {deployment} drift: {reason or 'not evaluated yet'}"
    samples = int(drift.get("samples") or 0)
    if kind == "inputDrift":
        ratio = drift.get("driftedRatio")
        value = float(ratio) if isinstance(ratio, int | float) else 0.0
        return value, samples, f"deployment {deployment} driftedRatio"
    drifted = drift.get("predictionDrifted")
    if not isinstance(drifted, bool):
        return None, 0, f"deployment {deployment}'s drift profile has no prediction column"
    return (1.0 if drifted else 0.0), samples, f"deployment {deployment} predictionDrifted"


def drift_measure(
    status: Mapping[str, Any], kind: str, candidate: str, stable: str | None
) -> RawMeasurement:
    value, samples, why = drift_value(status, candidate, kind)
    if stable is None:
        return RawMeasurement(candidate=value, candidate_samples=samples, message=why)
    stable_value, stable_samples, stable_why = drift_value(status, stable, kind)
    return RawMeasurement(
        value, stable_value, samples, stable_samples, message=f"{why}; {stable_why}"
    )
