"""SampleGate: the drift hook sees the requests of randomly drawn time slots, at the rate."""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mlkube_serving.drift_gate import SampleGate


class Plane:
    sink: Any = None


class VirtualLoop:
    """The two calls the gate makes (`time`, `call_at`) on a virtual clock; each callback
    runs `late` seconds after it was due, as on a busy loop."""

    def __init__(self, late: float) -> None:
        self.now = 0.0
        self.late = late
        self.due: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.count = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Any:
        self.count += 1
        entry = (when, self.count, callback, args)
        heapq.heappush(self.due, entry)
        return Handle(self.due, entry)

    def run(self, plane: Plane, hook: object, until: float) -> float:
        """Run the callbacks due before `until`; the time `plane.sink` was the hook."""
        sampled = 0.0
        while self.due and self.due[0][0] + self.late < until:
            when, _, callback, args = heapq.heappop(self.due)
            moment = max(self.now, when + self.late)
            if plane.sink is hook:
                sampled += moment - self.now
            self.now = moment
            callback(*args)
        if plane.sink is hook:
            sampled += until - self.now
        self.now = until
        return sampled


class IterationLoop(VirtualLoop):
    """A loop whose every iteration runs the callbacks due at its start (those they schedule
    wait for the next iteration, as asyncio and uvloop do), then one request that holds the
    loop for `step` seconds: the sink that request sees is the one the gate left."""

    def __init__(self, step: float) -> None:
        super().__init__(late=0.0)
        self.step = step

    def share(self, plane: Plane, hook: object, iterations: int) -> float:
        sampled = 0
        for _ in range(iterations):
            ready = []
            while self.due and self.due[0][0] <= self.now:
                ready.append(heapq.heappop(self.due))
            for _, _, callback, args in ready:
                callback(*args)
            sampled += plane.sink is hook
            self.now += self.step
        return sampled / iterations


class Handle:
    def __init__(self, due: list[Any], entry: Any) -> None:
        self.due, self.entry = due, entry

    def cancel(self) -> None:
        if self.entry in self.due:
            self.due.remove(self.entry)
            heapq.heapify(self.due)


def scripted(*values: float) -> Callable[[], float]:
    draws: Iterator[float] = iter(values)
    return lambda: next(draws)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.5, 1.5])
def test_a_gate_needs_a_rate_strictly_between_0_and_1(rate: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        SampleGate(object(), rate)


def test_gaps_are_geometric_like_independent_draws() -> None:
    gate = SampleGate(object(), 0.1, coin=random.Random(7).random)
    gaps = [gate.gap() for _ in range(50_000)]
    assert sum(g == 0 for g in gaps) / len(gaps) == pytest.approx(0.1, abs=0.01)
    assert sum(gaps) / len(gaps) == pytest.approx(9.0, rel=0.05)  # (1 - p) / p
    assert min(gaps) == 0


def test_the_hook_is_the_sink_in_drawn_slots_and_none_between() -> None:
    hook, plane = object(), Plane()
    loop = VirtualLoop(late=0.0)
    # a sampled first slot (gap 0), then 3 unsampled slots (log 0.1 / log 0.5 = 3.3), then
    # one sampled, then a long gap
    gate = SampleGate(hook, 0.5, slot=0.01, coin=scripted(0.0, 0.9, 0.999999))
    gate.attach(plane, loop)  # type: ignore[arg-type]
    assert plane.sink is hook
    loop.run(plane, hook, 0.015)
    assert plane.sink is None  # the first slot ended at 0.01; the next sampled one at 0.04
    loop.run(plane, hook, 0.045)
    assert plane.sink is hook
    loop.run(plane, hook, 0.055)
    assert plane.sink is None


def test_detach_stops_the_timers_and_returns_the_hook() -> None:
    hook, plane = object(), Plane()
    loop = VirtualLoop(late=0.0)
    gate = SampleGate(hook, 0.5, slot=0.01, coin=scripted(0.0))
    gate.attach(plane, loop)  # type: ignore[arg-type]
    assert plane.sink is hook
    assert gate.detach() is hook
    assert plane.sink is None and loop.due == []


@pytest.mark.parametrize("late", [0.0, 0.001, 0.004])
def test_the_sampled_fraction_of_time_is_the_rate_even_on_a_late_loop(late: float) -> None:
    """Boundaries are planned times: callbacks that all run late (a fifth of a slot, or
    most of one) shift slots without lengthening them. Timed from each callback instead,
    1 ms late made 10% into ~11.6% (the crossover's server sampled 12%)."""
    hook, plane = object(), Plane()
    loop = VirtualLoop(late=late)
    gate = SampleGate(hook, 0.1, slot=0.005, coin=random.Random(3).random)
    gate.attach(plane, loop)  # type: ignore[arg-type]
    span = 2_000.0  # 400,000 slots
    assert loop.run(plane, hook, span) / span == pytest.approx(0.1, abs=0.004)


@pytest.mark.parametrize("step", [0.0005, 0.002, 0.01, 0.03])
def test_a_loop_slower_than_a_slot_still_samples_about_the_rate(step: float) -> None:
    """Iterations of 10 or 30 ms (a slot is 5 ms): replaying each missed boundary one
    iteration at a time sampled 21% and 53% of the requests at a rate of 10%; skipping the
    missed slots keeps it near the rate (one sink state per iteration is what remains)."""
    hook, plane = object(), Plane()
    loop = IterationLoop(step)
    gate = SampleGate(hook, 0.1, slot=0.005, coin=random.Random(5).random)
    gate.attach(plane, loop)  # type: ignore[arg-type]
    assert loop.share(plane, hook, 100_000) == pytest.approx(0.1, abs=0.03)


def test_a_vanishing_rate_draws_a_finite_gap() -> None:
    gate = SampleGate(object(), 1e-320, coin=lambda: 0.5)  # log1p(-rate) is subnormal
    assert 0 < gate.gap() < 2**64


def test_on_a_real_loop_the_sink_switches_and_detach_leaves_it_off() -> None:
    async def run() -> tuple[set[bool], Any]:
        hook, plane = object(), Plane()
        gate = SampleGate(hook, 0.5, slot=0.002, coin=random.Random(1).random)
        gate.attach(plane)
        seen = set()
        for _ in range(200):
            seen.add(plane.sink is hook)
            await asyncio.sleep(0.0005)
        gate.detach()
        await asyncio.sleep(0.01)
        return seen, plane.sink

    seen, after = asyncio.run(run())
    assert seen == {True, False}
    assert after is None
