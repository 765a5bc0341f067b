"""The analysis state machine with an injected clock: every measurement outcome, every
noDataPolicy, minSampleCount, relative ratio/difference, every limit, count 0, CEL failures,
the last-5 window, and a property: no sequence of measurements makes a Failed metric pass."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.api.rollout import RolloutMetric
from mlkube.api.rollout_status import RolloutMetricStatus
from mlkube.reconcile.rollout_analysis import (
    KEPT_MEASUREMENTS,
    ConditionError,
    RawMeasurement,
    check_condition,
    is_due,
    judge,
    record,
    start_metric,
)
from mlkube.reconcile.rollout_verdict import verdict


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def metric(**fields: Any) -> RolloutMetric:
    provider = fields.pop("provider", {"builtin": {"type": "errorRate"}})
    base: dict[str, Any] = {
        "name": "errors", "interval": "10s", "count": 3, "successCondition": "result <= 0.01",
        "provider": provider,
    }  # fmt: skip
    return RolloutMetric.model_validate({**base, **fields})


def relative(compare: str, **fields: Any) -> RolloutMetric:
    return metric(provider={"builtin": {"type": "errorRate", "compare": compare}}, **fields)


def run(m: RolloutMetric, raws: list[RawMeasurement]) -> RolloutMetricStatus:
    status = start_metric(m, T0, background=False)
    now = T0
    for raw in raws:
        now += dt.timedelta(seconds=10)
        assert is_due(status, now)
        status = record(m, status, raw, now)
    return status


GOOD = RawMeasurement(candidate=0.001, candidate_samples=100)
BAD = RawMeasurement(candidate=0.2, candidate_samples=100)
MID = RawMeasurement(candidate=0.03, candidate_samples=100)
NONE = RawMeasurement(candidate=None, candidate_samples=0)
ERR = RawMeasurement(error="router unreachable")
PROM = {"prometheus": {"address": "http://prom.monitoring.svc:9090", "query": "up"}}


@pytest.mark.parametrize(
    ("fields", "raw", "phase"),
    [
        ({}, GOOD, "Successful"),
        ({}, BAD, "Failed"),  # successCondition false and no failureCondition
        ({"failureCondition": "result > 0.05"}, BAD, "Failed"),
        ({"failureCondition": "result > 0.05"}, MID, "Inconclusive"),
        ({"failureCondition": "result > 0.05"}, GOOD, "Successful"),
        ({}, ERR, "Error"),
        ({}, NONE, "NoData"),
        ({"minSampleCount": 50}, RawMeasurement(candidate=0.0, candidate_samples=49), "NoData"),
        ({"minSampleCount": 50}, RawMeasurement(candidate=0.0, candidate_samples=50), "Successful"),
        (
            {"minSampleCount": 50, "provider": PROM},
            RawMeasurement(candidate=0.0, candidate_samples=1),
            "Successful",
        ),  # Prometheus and web samples are not counted
        ({}, RawMeasurement(candidate=float("nan"), candidate_samples=9), "NoData"),
        ({"successCondition": "result <= "}, GOOD, "Error"),  # does not compile
        ({"successCondition": "result + 1"}, GOOD, "Error"),  # not a bool
        ({"successCondition": "stable <= 0.01"}, GOOD, "Error"),  # null stable in absolute
    ],
)
def test_every_measurement_outcome(fields: dict[str, Any], raw: RawMeasurement, phase: str) -> None:
    measured = judge(metric(**fields), raw, T0)
    assert measured.phase == phase
    assert measured.at == "2026-11-30T12:00:00.000Z"
    if phase == "Error":
        assert measured.message


def test_cel_error_carries_the_condition_and_celpy_message() -> None:
    measured = judge(metric(successCondition="result <= 'x'"), GOOD, T0)
    assert measured.phase == "Error"
    assert measured.message is not None and "result <= 'x'" in measured.message
    assert measured.value == 0.001
    with pytest.raises(ConditionError, match="does not compile"):
        check_condition("result <=")


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("result == 0", 0.0, True),
        ("0 == result", 0.0, True),
        ("result != 0", 0.0, False),
        ("result == 1", 0.5, False),
        ("result in [0, 1]", 1.0, True),
        ("result in [0, 1]", 0.5, False),
        ("result == 0.0 && 'a' == 'a'", 0.0, True),  # other types keep celpy's equality
    ],
)
def test_integer_literals_compare_with_the_double_result(
    condition: str, value: float, expected: bool
) -> None:
    """celpy alone has no double == int overload: `result == 0` was an Error measurement."""
    measured = judge(metric(successCondition=condition), RawMeasurement(value, None, 9), T0)
    assert measured.phase == ("Successful" if expected else "Failed"), measured.message


@pytest.mark.parametrize(
    ("compare", "candidate", "stable", "result"),
    [
        ("ratio", 0.02, 0.01, 2.0),
        ("difference", 0.02, 0.01, 0.01),
        ("ratio", 0.0, 0.5, 0.0),
    ],
)
def test_relative_compare(compare: str, candidate: float, stable: float, result: float) -> None:
    m = relative(compare, successCondition="result <= 1.5 && candidate >= 0.0 && stable >= 0.0")
    raw = RawMeasurement(
        candidate=candidate, stable=stable, candidate_samples=100, stable_samples=100
    )
    measured = judge(m, raw, T0)
    assert measured.value == pytest.approx(result)
    assert (measured.candidate, measured.stable) == (candidate, stable)
    assert measured.phase == ("Successful" if result <= 1.5 else "Failed")


@pytest.mark.parametrize(
    ("compare", "raw", "why"),
    [
        (
            "ratio",
            RawMeasurement(candidate=0.1, stable=0.0, candidate_samples=9, stable_samples=9),
            "ratio is undefined",
        ),
        (
            "difference",
            RawMeasurement(candidate=0.1, stable=None, candidate_samples=9),
            "stable: 0 samples < minSampleCount 5",
        ),
        ("ratio", RawMeasurement(candidate=None, stable=0.1, candidate_samples=9), "no value"),
        (
            "ratio",
            RawMeasurement(candidate=0.0, stable=0.0, candidate_samples=9, stable_samples=9),
            "ratio is undefined",  # 0/0 too: compare error rates by difference
        ),
        (
            "ratio",
            RawMeasurement(candidate=1, stable=1, candidate_samples=9, stable_samples=4),
            "stable: 4 samples < minSampleCount 5",
        ),
        (
            "difference",
            RawMeasurement(candidate=1, stable=1, candidate_samples=4, stable_samples=9),
            "4 samples < minSampleCount 5",
        ),
    ],
)
def test_relative_without_data(compare: str, raw: RawMeasurement, why: str) -> None:
    measured = judge(relative(compare, minSampleCount=5), raw, T0)
    assert measured.phase == "NoData"
    assert measured.message is not None and why in measured.message


@pytest.mark.parametrize(
    ("policy", "phase", "failed", "inconclusive"),
    [("Fail", "Failed", 1, 0), ("Inconclusive", "Inconclusive", 0, 1), ("Ignore", "Running", 0, 0)],
)
def test_every_no_data_policy(policy: str, phase: str, failed: int, inconclusive: int) -> None:
    status = run(metric(noDataPolicy=policy), [NONE])
    assert (status.phase, status.failed, status.inconclusive, status.no_data) == (
        phase, failed, inconclusive, 1,
    )  # fmt: skip
    assert status.count == (0 if policy == "Ignore" else 1)
    if policy == "Ignore":  # waits for data: the next measurement is one interval later
        assert status.next_measurement_at == "2026-11-30T12:00:20.000Z"
    else:
        assert status.next_measurement_at is None
    assert status.measurements[-1].phase == "NoData"


def test_ignored_no_data_then_data_succeeds() -> None:
    status = run(metric(noDataPolicy="Ignore", count=2), [NONE, GOOD, NONE, GOOD])
    assert (status.phase, status.count, status.no_data, status.successful) == (
        "Successful",
        2,
        2,
        2,
    )


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_failure_limit(limit: int) -> None:
    m = metric(failureLimit=limit, count=10)
    assert run(m, [BAD] * limit).phase == "Running"
    status = run(m, [BAD] * (limit + 1))
    assert (status.phase, status.failed) == ("Failed", limit + 1)


@pytest.mark.parametrize("limit", [0, 2])
def test_inconclusive_limit(limit: int) -> None:
    m = metric(inconclusiveLimit=limit, failureCondition="result > 0.05", count=10)
    assert run(m, [MID] * limit).phase == "Running"
    assert run(m, [MID] * (limit + 1)).phase == "Inconclusive"


@pytest.mark.parametrize("limit", [0, 4])
def test_consecutive_error_limit(limit: int) -> None:
    m = metric(consecutiveErrorLimit=limit, count=100)
    assert run(m, [ERR] * limit).phase == "Running"
    status = run(m, [ERR] * (limit + 1))
    assert (status.phase, status.errors, status.consecutive_errors) == (
        "Error",
        limit + 1,
        limit + 1,
    )
    assert "router unreachable" in verdict(m, status).text


def test_a_measurement_between_errors_resets_the_run() -> None:
    status = run(metric(consecutiveErrorLimit=1, count=100), [ERR, GOOD, ERR, GOOD, ERR])
    assert (status.phase, status.errors, status.consecutive_errors, status.count) == (
        "Running", 3, 1, 2,
    )  # fmt: skip


def test_count_measurements_succeed_within_limits() -> None:
    m = metric(count=3, failureLimit=1, inconclusiveLimit=1, failureCondition="result > 0.05")
    status = run(m, [GOOD, BAD, MID])
    assert (status.phase, status.count, status.successful, status.failed, status.inconclusive) == (
        "Successful", 3, 1, 1, 1,
    )  # fmt: skip
    assert status.next_measurement_at is None


def test_count_zero_never_succeeds() -> None:
    status = run(metric(count=0), [GOOD] * 40)
    assert (status.phase, status.count) == ("Running", 40)
    assert len(status.measurements) == KEPT_MEASUREMENTS
    assert status.measurements[-1].at == "2026-11-30T12:06:40.000Z"


def test_a_verdict_is_final() -> None:
    m = metric(count=1)
    done = run(m, [GOOD])
    assert record(m, done, BAD, T0 + dt.timedelta(minutes=5)) == done
    assert not is_due(done, T0 + dt.timedelta(days=1))


def test_first_due_one_interval_after_start_and_a_late_baseline_is_not_counted() -> None:
    fresh = start_metric(metric(interval="30s"), T0, background=True)
    assert (fresh.phase, fresh.background, fresh.condition) == ("Running", True, "result <= 0.01")
    assert not is_due(fresh, at(29)) and is_due(fresh, at(30))
    # the loop lost the router window (operator restart): the answer only opens a new one
    late = record(metric(interval="30s"), fresh, RawMeasurement(baseline=True), at(30))
    assert (late.count, late.measurements, late.no_data, late.phase) == (0, [], 0, "Running")
    assert not is_due(late, at(59)) and is_due(late, at(60))


def test_verdict_texts_name_metric_value_condition_and_limit() -> None:
    failed = run(metric(), [BAD])
    why = verdict(metric(), failed)
    assert why.text == "metric errors measured 0.2, condition result <= 0.01 (failureLimit 0)"
    assert failed.message == why.text and run(metric(), [GOOD]).message is None
    passed = run(metric(count=1), [GOOD]).message
    assert passed == "metric errors: 1/1 measurements successful, last 0.001"
    assert (why.value, why.condition) == (0.2, "result <= 0.01")
    m = metric(failureCondition="result > 0.05")
    assert verdict(m, run(m, [BAD])).condition == "result > 0.05"
    assert "neither result <= 0.01 nor result > 0.05" in verdict(m, run(m, [MID])).text
    nodata = metric(noDataPolicy="Fail", minSampleCount=50)
    text = verdict(nodata, run(nodata, [RawMeasurement(candidate=0.0, candidate_samples=3)])).text
    assert text == (
        "metric errors had no data: 3 samples < minSampleCount 50"
        " (noDataPolicy Fail, failureLimit 0)"
    )


RAWS = st.one_of(
    st.builds(RawMeasurement, candidate=st.floats(0, 1), candidate_samples=st.integers(0, 200)),
    st.just(ERR),
    st.just(RawMeasurement(baseline=True)),
    st.just(NONE),
    st.builds(
        RawMeasurement,
        candidate=st.floats(0, 1) | st.none(),
        stable=st.floats(0, 1) | st.none(),
        candidate_samples=st.integers(0, 200),
        stable_samples=st.integers(0, 200),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(RAWS, max_size=6),
    after=st.lists(RAWS, max_size=10),
    policy=st.sampled_from(["Fail", "Inconclusive", "Ignore"]),
    limit=st.integers(0, 2),
)
def test_no_sequence_makes_a_failed_metric_pass(
    before: list[RawMeasurement], after: list[RawMeasurement], policy: str, limit: int
) -> None:
    m = metric(noDataPolicy=policy, failureLimit=limit, count=4, minSampleCount=10)
    status, frozen = start_metric(m, T0, background=False), None
    for n, raw in enumerate([*before, *[BAD] * (limit + 1), *after]):
        status = record(m, status, raw, T0 + dt.timedelta(seconds=10 * (n + 1)))
        if frozen is not None:
            assert status == frozen  # phase, counts and measurements: nothing moves
        elif status.phase == "Failed":
            frozen = status
    # before the breach only another verdict can have ended the metric first
    assert frozen is not None or status.phase in ("Error", "Inconclusive", "Successful")
