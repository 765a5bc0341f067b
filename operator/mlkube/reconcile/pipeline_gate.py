"""The `evaluate` step: metric thresholds and the comparison with the serving Model (pure).

The operator gathers the numbers (upstream steps' recorded metrics; for `compareWith`, the
metric in `spec.lineage.metrics` of the Model served by the endpoint deployment with the most
traffic, or the named deployment) and this decides. Every check is stated with the metric, its
value and what it was held against, so the step's message says why the gate closed, e.g.
`auc 0.81 < serving credit-risk-v3 0.84 + 0.00`. With no baseline to compare with (the
endpoint serves no Model yet, or its Model has no such metric) the comparison passes and says
so: the first model of an endpoint has nothing to beat.

    evaluate_gate(spec, metrics, baseline=None, baseline_label="", no_baseline="") -> GateResult
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mlkube.api.pipeline_step import EvaluateStep


@dataclass(frozen=True)
class GateResult:
    passed: bool
    message: str  # the failed checks, else every check, joined by "; "
    checks: tuple[str, ...]  # one line per check, passed or not


def _num(value: float) -> str:
    """Two decimals when that is exact, else enough digits to tell close values apart."""
    if math.isfinite(value) and abs(value - round(value, 2)) < 1e-12:
        return f"{value:.2f}"
    return f"{value:.6g}"


def _metric(
    metrics: Mapping[str, Mapping[str, float]], step: str, name: str
) -> tuple[float | None, str | None]:
    value = (metrics.get(step) or {}).get(name)
    if value is None:
        return None, f"metric {name} missing from step {step}"
    if not math.isfinite(float(value)):
        return None, f"metric {name} of step {step} is {value}"
    return float(value), None


def evaluate_gate(
    spec: EvaluateStep,
    metrics: Mapping[str, Mapping[str, float]],
    baseline: float | None = None,
    baseline_label: str = "",
    no_baseline: str = "",
) -> GateResult:
    """Pass when every threshold holds and the new value beats the baseline by
    `minImprovement` (in the better direction). `metrics`: upstream step → its recorded
    metrics; `baseline_label` names the baseline in messages (e.g. "serving credit-risk-v3");
    `no_baseline` says why there is none (default: the label has no such metric)."""
    failed: list[str] = []
    checks: list[str] = []

    def check(ok: bool, text: str) -> None:
        checks.append(text)
        if not ok:
            failed.append(text)

    for bound in spec.metrics:
        value, problem = _metric(metrics, bound.from_.step, bound.name)
        if value is None:
            check(False, str(problem))
            continue
        if bound.min is not None:
            ok = value >= bound.min
            check(ok, f"{bound.name} {_num(value)} {'>=' if ok else '<'} min {_num(bound.min)}")
        if bound.max is not None:
            ok = value <= bound.max
            check(ok, f"{bound.name} {_num(value)} {'<=' if ok else '>'} max {_num(bound.max)}")
    compare = spec.compare_with
    if compare is not None:
        value, problem = _metric(metrics, compare.from_.step, compare.metric)
        label = baseline_label or f"endpoint {compare.endpoint}"
        if value is None:
            check(False, str(problem))
        elif baseline is None or not math.isfinite(baseline):
            why = no_baseline or f"{label} has no {compare.metric} metric"
            check(True, f"{compare.metric} {_num(value)}: no baseline ({why})")
        else:
            margin = compare.min_improvement
            up = compare.higher_is_better
            ok = value >= baseline + margin if up else value <= baseline - margin
            rel = (">=" if ok else "<") if up else ("<=" if ok else ">")
            shown = f"{label} {_num(baseline)} {'+' if up else '-'} {_num(margin)}"
            text = f"{compare.metric} {_num(value)} {rel} {shown}"
            check(ok, text)
    if not checks:
        return GateResult(True, "no checks", ())
    return GateResult(not failed, "; ".join(failed or checks), tuple(checks))
