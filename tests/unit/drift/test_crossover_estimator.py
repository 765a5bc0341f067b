"""The drift-overhead crossover's estimator (bench/drift/crossover.py): a misread schedule or
a wrong formula would print a wrong verdict silently (a first version mislabelled every
phase)."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

CROSSOVER = Path(__file__).resolve().parents[3] / "bench" / "drift" / "crossover.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crossover_under_test", CROSSOVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def synthetic(cost: dict[str, float], cycles: int, noise: float) -> tuple[list, list]:
    """Phases of servers A (3% slower for life) and B under a moment shared by both; `cost`:
    the extra CPU per request of each sink."""
    crossover = load()
    measured = list(cost)
    rng = random.Random(7)
    a, b = [], []
    size = 2 * len(measured)  # phases per cycle
    for k in range(1000 * size, (1000 + cycles) * size):
        label_a, label_b = crossover.schedule(k, measured)
        moment = 100.0 * (1 + rng.uniform(-0.15, 0.15))  # steal: both servers alike
        us_a = moment * 1.03 * (1 + cost.get(label_a, 0.0)) * (1 + rng.uniform(-noise, noise))
        us_b = moment * (1 + cost.get(label_b, 0.0)) * (1 + rng.uniform(-noise, noise))
        a.append([k, label_a, us_a * 1000 / 1e6, 1000])
        b.append([k, label_b, us_b * 1000 / 1e6, 1000])
    return a, b


def test_the_schedule_pairs_each_sink_with_its_mirror_in_every_cycle() -> None:
    crossover = load()
    measured = ["default", "100%", "off2"]
    for cycle in range(5):
        got = [crossover.schedule(cycle * 6 + i, measured) for i in range(6)]
        assert sorted(got) == sorted(crossover.pairs(measured))
    orders = {tuple(crossover.schedule(c * 6 + i, measured) for i in range(6)) for c in range(20)}
    assert len(orders) > 1  # a fresh order per cycle


def test_the_estimate_cancels_the_moment_and_the_process_offset() -> None:
    crossover = load()
    cost = {"default": 0.008, "100%": 0.035, "off2": 0.0}
    a, b = synthetic(cost, cycles=40, noise=0.0)
    found = crossover.losses(a, b, list(cost))
    for label, extra in cost.items():
        loss, _, _ = crossover.summary(found[label])
        assert abs(loss - 100 * (1 - 1 / (1 + extra))) < 1e-6, (label, loss)
        assert len(found[label]) == 40


def test_noise_per_phase_leaves_the_median_close() -> None:
    crossover = load()
    cost = {"default": 0.01, "100%": 0.04, "off2": 0.0}
    a, b = synthetic(cost, cycles=60, noise=0.01)
    found = crossover.losses(a, b, list(cost))
    assert abs(crossover.summary(found["off2"])[0]) < 0.5
    assert abs(crossover.summary(found["100%"])[0] - 3.85) < 0.6


def test_phases_missing_on_one_server_drop_only_their_cycle() -> None:
    crossover = load()
    cost = {"default": 0.01, "off2": 0.0}
    a, b = synthetic(cost, cycles=10, noise=0.0)
    found = crossover.losses(a[2:], b, list(cost))  # the first cycle lost two of A's phases
    assert 9 <= len(found["default"]) <= 10 and 9 <= len(found["off2"]) <= 10


def test_every_phase_ends_with_the_same_round_trip_through_the_loop() -> None:
    """A phase without a hook pays the hand-off to the server's loop too (else the hand-off
    is counted as the hook's cost); a hook's phase ends with its samples delivered."""
    import asyncio
    import threading

    crossover = load()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ran: list[str] = []

    class Hook:
        _loop = loop

        async def flush(self, seal: bool = True) -> bool:
            ran.append(f"flush seal={seal} on loop={asyncio.get_running_loop() is loop}")
            return True

    class Probe:  # a diagnostic sink: nothing to deliver
        pass

    class Gate:  # the default rate's SampleGate: closed on the loop, then its hook flushed
        def detach(self) -> Hook:
            ran.append(f"detach on loop={asyncio.get_running_loop() is loop}")
            return Hook()

    original = crossover._end

    async def counted(sink: object, flush: bool = True) -> None:
        ran.append(f"end on loop={asyncio.get_running_loop() is loop}")
        await original(sink, flush)

    crossover._end = counted
    try:
        crossover.deliver(None, loop)
        crossover.deliver(Probe(), loop)
        crossover.deliver(Hook(), loop)
        crossover.deliver(Gate(), loop)
        crossover.deliver(Gate(), loop, flush=False)  # hook_ab's phases: closed, not flushed
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    end = "end on loop=True"
    flushed = "flush seal=True on loop=True"
    detached = "detach on loop=True"
    assert ran == [end, end, end, flushed, end, detached, flushed, end, detached]


def test_a_phase_starts_with_its_sink_or_its_gate_attached_on_the_loop() -> None:
    """A gate sets the dataplane's sink itself, on the server's loop; until it runs, the
    phase samples nothing (not the previous phase's sink)."""
    import asyncio
    import threading

    crossover = load()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    attached: list[tuple[object, bool]] = []

    class Plane:
        sink: object = "previous"

    class Gate:
        def attach(self, plane: Plane) -> None:
            attached.append((plane.sink, asyncio.get_running_loop() is loop))
            plane.sink = self

    plane, hook, gate = Plane(), object(), Gate()
    try:
        crossover.start_phase(plane, hook, loop)
        assert plane.sink is hook
        crossover.start_phase(plane, gate, loop)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert attached == [(None, True)]
    assert plane.sink is gate
