"""The `evaluate` step's decision (pure): thresholds and the comparison with the serving Model.

Every check yields one line naming the metric, its value and the bound or baseline, so the
step's message says exactly why a candidate passed or was stopped. A missing metric fails its
check (a gate that cannot see the number must not open). A missing baseline passes the
comparison with a line saying so: the first model of an endpoint has nothing to beat, and
refusing it would make the loop impossible to start (docs/pipelines.md §4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Threshold:
    """metrics[]: `value` of `metric` (None: not recorded by `source`) within [minimum, maximum]."""

    metric: str
    source: str
    value: float | None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Comparison:
    """compareWith: the candidate's `value` against the serving Model's `baseline`.

    `serving` names what was compared with (e.g. "Model credit-risk-v4 on credit/blue"), or
    says why there is no baseline (`baseline` None).
    """

    metric: str
    source: str
    value: float | None
    baseline: float | None
    serving: str
    higher_is_better: bool = True
    min_improvement: float = 0.0


@dataclass(frozen=True)
class Verdict:
    passed: bool
    lines: tuple[str, ...]

    @property
    def message(self) -> str:
        head = "gate passed" if self.passed else "gate failed"
        return f"{head}: " + "; ".join(self.lines) if self.lines else head


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def check_threshold(t: Threshold) -> tuple[bool, str]:
    if t.value is None:
        return False, f"{t.metric}: not recorded by step {t.source} (FAIL)"
    low = t.minimum is None or t.value >= t.minimum
    high = t.maximum is None or t.value <= t.maximum
    bounds = [f"min {_fmt(t.minimum)}" if t.minimum is not None else "",
              f"max {_fmt(t.maximum)}" if t.maximum is not None else ""]  # fmt: skip
    verdict = "pass" if low and high else "FAIL"
    return (
        low and high,
        f"{t.metric} {_fmt(t.value)} ({', '.join(b for b in bounds if b)}): {verdict}",
    )


def check_comparison(c: Comparison) -> tuple[bool, str]:
    if c.value is None:
        return False, f"{c.metric}: not recorded by step {c.source} (FAIL)"
    if c.baseline is None:
        return True, f"{c.metric} {_fmt(c.value)}: no baseline ({c.serving}): pass"
    if c.higher_is_better:
        needed = c.baseline + c.min_improvement
        ok, relation = c.value >= needed, ">="
    else:
        needed = c.baseline - c.min_improvement
        ok, relation = c.value <= needed, "<="
    improvement = (
        f" + {_fmt(c.min_improvement)}" if c.higher_is_better else f" - {_fmt(c.min_improvement)}"
    )
    target = _fmt(c.baseline) + (improvement if c.min_improvement else "")
    return ok, (
        f"{c.metric} {_fmt(c.value)} vs baseline {_fmt(c.baseline)} of {c.serving}"
        f" (needs {relation} {target}): {'pass' if ok else 'FAIL'}"
    )


def decide(thresholds: Sequence[Threshold], comparison: Comparison | None) -> Verdict:
    """Pass when every threshold holds and the comparison (if any) passes."""
    results = [check_threshold(t) for t in thresholds]
    if comparison is not None:
        results.append(check_comparison(comparison))
    return Verdict(all(ok for ok, _ in results), tuple(line for _, line in results))


def serving_deployment(spec: Mapping[str, Any], named: str | None) -> str | None:
    """The deployment compared with: `named`, else the one with the most live traffic (ties:
    name order); None when the endpoint has no such deployment or no live traffic."""
    deployments = {str(d.get("name")) for d in spec.get("deployments") or []}
    if named is not None:
        return named if named in deployments else None
    traffic = spec.get("traffic") or {}
    live = sorted((-int(v), str(k)) for k, v in traffic.items() if int(v) > 0 and k in deployments)
    return live[0][1] if live else None
