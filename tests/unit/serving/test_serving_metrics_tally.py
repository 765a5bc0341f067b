"""Request metrics are tallied per loop turn and published in bulk: same numbers as observe()."""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from mlkube_serving import metrics


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=50))
def test_bulk_observations_equal_one_by_one(latencies: list[float]) -> None:
    one, bulk = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("lat", "x", buckets=metrics.LATENCY_BUCKETS, registry=one)
    in_bulk = Histogram("lat", "x", buckets=metrics.LATENCY_BUCKETS, registry=bulk)
    counts = [0] * (len(metrics.LATENCY_BUCKETS) + 1)
    for seconds in latencies:
        by_one.observe(seconds)
        counts[bisect_left(metrics.LATENCY_BUCKETS, seconds)] += 1
    metrics.add_observations(in_bulk, sum(latencies), counts)
    got, want = samples(bulk), samples(one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert abs(got[key] - value) < 1e-9, key


def count(model: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "mlkube_requests_total", {"model": model, "protocol": "v2", "status": "200"}
    )
    return value or 0.0


def test_observations_are_published_at_the_end_of_the_loop_turn() -> None:
    async def go() -> tuple[float, float]:
        for _ in range(3):
            metrics.observe_request("tally-a", "v2", 200, 0.001)
        before = count("tally-a")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return before, count("tally-a")

    before, after = asyncio.run(go())
    assert (before, after) == (0.0, 3.0)
    buckets = metrics.REGISTRY.get_sample_value(
        "mlkube_request_duration_seconds_bucket",
        {"model": "tally-a", "protocol": "v2", "le": "0.001"},
    )
    assert buckets == 3.0


def test_without_a_loop_observations_are_published_at_once() -> None:
    metrics.observe_request("tally-b", "v2", 200, 0.2)
    assert count("tally-b") == 1.0


def test_a_failed_flush_does_not_stop_publishing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metrics.add_observations
    calls = {"n": 0}

    def flaky(child: Any, seconds: float, buckets: list[int]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        real(child, seconds, buckets)

    monkeypatch.setattr(metrics, "add_observations", flaky)

    async def go() -> None:
        metrics.observe_request("tally-c", "v2", 200, 0.001)
        await asyncio.sleep(0)  # the flush fails (asyncio logs it)
        await asyncio.sleep(0)
        metrics.observe_request("tally-c", "v2", 200, 0.001)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(go())
    assert count("tally-c") == 2.0  # the counter of the first flush went out before it failed
    assert calls["n"] == 2
