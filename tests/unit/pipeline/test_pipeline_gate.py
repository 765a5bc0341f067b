"""The evaluate gate: thresholds and the comparison, each stated with its numbers."""

from __future__ import annotations

from typing import Any

from mlkube.api.pipeline_step import EvaluateStep
from mlkube.reconcile.pipeline_gate import evaluate_gate

FROM = {"step": "train", "output": "metrics"}
METRICS = {"train": {"auc": 0.81, "loss": 0.2}}


def gate(**fields: Any) -> EvaluateStep:
    return EvaluateStep.model_validate(fields)


def compare(**fields: Any) -> dict[str, Any]:
    return {"endpoint": "credit", "metric": "auc", "from": FROM, **fields}


def test_the_comparison_states_value_baseline_and_margin() -> None:
    result = evaluate_gate(gate(compareWith=compare()), METRICS, 0.84, "serving credit-risk-v3")
    assert not result.passed
    assert result.message == "auc 0.81 < serving credit-risk-v3 0.84 + 0.00"
    better = evaluate_gate(gate(compareWith=compare(minImprovement=0.01)), METRICS, 0.8, "v3")
    assert better.passed and better.message == "auc 0.81 >= v3 0.80 + 0.01"


def test_a_close_miss_is_shown_with_enough_digits() -> None:
    result = evaluate_gate(gate(compareWith=compare(minImprovement=0.005)), METRICS, 0.806, "v3")
    assert not result.passed
    assert result.message == "auc 0.81 < v3 0.806 + 0.005"


def test_lower_is_better() -> None:
    spec = gate(compareWith=compare(metric="loss", higherIsBetter=False, minImprovement=0.05))
    assert evaluate_gate(spec, METRICS, 0.3, "v3").passed
    worse = evaluate_gate(spec, METRICS, 0.22, "v3")
    assert not worse.passed and worse.message == "loss 0.20 > v3 0.22 - 0.05"


def test_thresholds_report_only_the_failed_ones() -> None:
    spec = gate(metrics=[
        {"name": "auc", "from": FROM, "min": 0.8},
        {"name": "loss", "from": FROM, "max": 0.1},
        {"name": "f1", "from": FROM, "min": 0.5},
    ])  # fmt: skip
    result = evaluate_gate(spec, METRICS)
    assert not result.passed
    assert result.message == "loss 0.20 > max 0.10; metric f1 missing from step train"
    assert result.checks[0] == "auc 0.81 >= min 0.80"


def test_everything_passing_lists_every_check() -> None:
    spec = gate(metrics=[{"name": "auc", "from": FROM, "min": 0.8, "max": 0.9}])
    result = evaluate_gate(spec, METRICS)
    assert result.passed and result.message == "auc 0.81 >= min 0.80; auc 0.81 <= max 0.90"


def test_no_baseline_passes_and_says_so() -> None:
    result = evaluate_gate(gate(compareWith=compare()), METRICS, None)
    assert result.passed
    assert result.message == "auc 0.81: no baseline (endpoint credit has no auc metric)"
    said = evaluate_gate(gate(compareWith=compare()), METRICS, None, "v5", "v5 is this candidate")
    assert said.passed and said.message == "auc 0.81: no baseline (v5 is this candidate)"


def test_a_missing_or_non_finite_new_value_fails() -> None:
    assert not evaluate_gate(gate(compareWith=compare()), {}, 0.8).passed
    nan = evaluate_gate(gate(compareWith=compare()), {"train": {"auc": float("nan")}}, 0.8)
    assert not nan.passed and nan.message == "metric auc of step train is nan"
