"""Sample the drift hook's requests by time slot, not by a coin flipped for every request.

Below 100%, the dataplane's sink is None most of the time and the drift hook (sampling every
request) only during sampled slots: each `SLOT` seconds long, each sampled with the configured
rate's probability, independently of the others. A request is sampled with that probability
whatever its arrival pattern (the slots are drawn at random, not a fixed period a periodic
client could keep missing), and requests in one slot are sampled together.

Why (issue 16, ninth pass, docs/benchmarks/drift-overhead.md): inside a loaded server a coin
per request cost an unsampled request ~0.5% of the server's CPU (a sink that never samples,
measured in the crossover), and a sparsely sampled request cost about twice a densely sampled
one. With slots an unsampled request costs what it costs with no hook (`sink is None`) and a
sampled one what it costs at 100%. The timers cost ~2 callbacks per sampled slot on the
worker's loop (at 0.1 and 5 ms slots, ~40 a second).

The rate is a fraction of time: slot boundaries are planned on the loop's clock, so a loop
blocked by a long inline request delays a slot's start and its end alike. A loop more than a
slot behind skips the slots it missed rather than replaying them (one loop iteration each,
which sampled half the iterations of a loop whose iterations outlast a slot).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from typing import Any

SLOT = 0.005  # seconds: short against a drift window's span, long against a timer's cost
MAX_GAP = 2**53  # slots (~1.4 million years): a rate of 1e-320 would draw an infinite gap


class SampleGate:
    """Sets `plane.sink` to `hook` during sampled slots and to None between them; the hook
    samples every request it sees (its `rate` is 1). Runs on the worker's loop only."""

    def __init__(
        self, hook: Any, rate: float, *, slot: float = SLOT,
        coin: Callable[[], float] = random.random,
    ) -> None:  # fmt: skip
        if not 0.0 < rate < 1.0:
            raise ValueError(f"a gate samples a rate between 0 and 1 exclusive, not {rate}")
        self.hook = hook
        self.rate = rate
        self.slot = slot
        self._coin = coin
        self._log_miss = math.log1p(-rate)
        self._plane: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def attach(self, plane: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start gating `plane.sink`, on `loop` (the running one by default) and only there."""
        self._loop = loop or asyncio.get_running_loop()
        self._plane = plane
        self._close(self._loop.time())

    def detach(self) -> Any:
        """Stop: `plane.sink` back to None, no timer left; returns the hook (to flush it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._plane is not None:
            self._plane.sink = None
            self._plane = None
        return self.hook

    def gap(self) -> int:
        """Unsampled slots before the next sampled one: geometric, as independent draws give
        (P(gap >= k) = (1 - rate) ** k)."""
        gap = math.log(1.0 - self._coin()) / self._log_miss
        return int(gap) if gap < MAX_GAP else MAX_GAP  # a subnormal rate divides to inf

    def _close(self, at: float) -> None:
        """The slot that ends at `at` (loop time, as planned) is over, or the gate starts:
        draw how many slots pass unsampled. Boundaries are planned times (`call_at`), not
        "a slot after the callback ran": a busy loop runs every boundary late alike, so
        its lateness does not lengthen sampled slots more than the gaps (measured: with
        `call_later` from each callback the server sampled 12% at a rate of 10%)."""
        plane, loop = self._plane, self._loop
        if plane is None or loop is None:
            return
        now = loop.time()
        if now - at > self.slot:
            # The loop fell more than a slot behind (iterations longer than a slot): draw
            # from now (gaps are memoryless) instead of replaying the missed slots one loop
            # iteration each, which kept the hook as the sink for half the iterations.
            at = now
        gap = self.gap()
        if gap == 0:
            self._open(at)
            return
        plane.sink = None
        start = at + gap * self.slot
        self._timer = loop.call_at(start, self._open, start)

    def _open(self, at: float) -> None:
        plane, loop = self._plane, self._loop
        if plane is None or loop is None:
            return
        now = loop.time()
        if now >= at + self.slot:  # the slot was over before it could open: skip it
            self._close(now)
            return
        plane.sink = self.hook
        end = at + self.slot
        self._timer = loop.call_at(end, self._close, end)
