"""`when` conditions: typed parameters, upstream steps, and every way a condition can fail."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.reconcile.pipeline_when import MAX_WHEN, WhenError, check_when, evaluate_when, step_view

UPSTREAM = {
    "train": {"phase": "Succeeded", "outputs": {"model": "s3://b/m/", "lr": "0.1"},
              "metrics": {"auc": 0.91}},
    "data-check": {"phase": "Skipped", "outputs": {}, "metrics": {}},
}  # fmt: skip
PARAMS = {"deploy": True, "epochs": 3, "threshold": 0.85, "mode": "full"}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("parameters.deploy", True),
        ("parameters.epochs > 2 && parameters.mode == 'full'", True),
        ("steps.train.metrics.auc >= parameters.threshold", True),
        ("steps['data-check'].phase == 'Skipped'", True),
        ("steps.train.outputs.lr == '0.1'", True),
        ("steps.train.outputs.model.startsWith('s3://')", True),
        ("'auc' in steps.train.metrics && steps.train.metrics.auc < 0.5", False),
        ("steps.train.metrics.all(m, steps.train.metrics[m] > 0.5)", True),
        ("parameters.epochs == 3 ? true : false", True),
    ],
)
def test_conditions_see_typed_parameters_and_upstream_steps(expression: str, value: bool) -> None:
    assert evaluate_when(expression, PARAMS, UPSTREAM) is value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("parameters.epochs +", "does not compile"),
        ("parameters.nope", "failed: no such member in mapping: 'nope'"),
        ("steps.other.phase == 'Succeeded'", "failed"),
        ("1 / 0 == 1", "failed"),
        ("parameters.epochs", "is an int, not a bool"),
        ("parameters.threshold == 1", "no matching overload for == applied to (double, int)"),
        ("'yes'", "is a string, not a bool"),
        ("parameters.epochs == 'three'", "failed"),
        ("[1, 2].map(x, [3, 4].exists(y, y == x)).size() > 0", "nests a comprehension"),
        ("(" * 400 + "true" + ")" * 400, ""),
    ],
)
def test_every_failure_is_a_when_error_with_a_message(expression: str, message: str) -> None:
    with pytest.raises(WhenError, match=re.escape(message) if message else None) as err:
        evaluate_when(expression, PARAMS, UPSTREAM)
    assert str(err.value)


def test_too_long_conditions_are_refused_before_parsing() -> None:
    long = "true && " * (MAX_WHEN // 8) + "true"
    with pytest.raises(WhenError, match=f"at most {MAX_WHEN}"):
        check_when(long)


def test_check_when_accepts_what_evaluates() -> None:
    check_when("parameters.deploy && steps.train.metrics.auc > 0.8")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_another_exception(expression: str) -> None:
    try:
        result = evaluate_when(expression, PARAMS, UPSTREAM)
    except WhenError:
        return
    assert isinstance(result, bool)


def test_a_maximal_single_comprehension_stays_fast() -> None:
    items = ",".join(["1"] * 300)
    expression = f"[{items}].all(x, x == 1)"
    assert len(expression) <= MAX_WHEN
    started = time.perf_counter()
    assert evaluate_when(expression, {}, {})
    assert time.perf_counter() - started < 2.0


def test_step_view_reads_the_status_entry() -> None:
    entry = {
        "name": "train",
        "phase": "Succeeded",
        "outputs": [
            {"name": "model", "type": "artifact", "uri": "s3://b/m/", "digest": "sha256:x"},
            {"name": "lr", "type": "parameter", "value": "0.1"},
        ],
        "metrics": {"auc": 0.9},
    }
    assert step_view(entry) == {
        "phase": "Succeeded",
        "outputs": {"model": "s3://b/m/", "lr": "0.1"},
        "metrics": {"auc": 0.9},
    }
    assert step_view({}) == {"phase": "Pending", "outputs": {}, "metrics": {}}
