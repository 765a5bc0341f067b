"""Diagnostic sample sinks for `hook_ab.py --probes`: what part of a sampled request costs what.

Why: at the default rate a sampled request costs the server more than twice what it costs at
100% (docs/benchmarks/drift-overhead.md, third pass). These sinks take apart the hook's work at
the default rate, switched in place next to the real hook in the same server:
  call  - `offer` returns at once (the dataplane's call and its five arguments only);
  hold  - `offer` keeps the two arrays in a list cleared every 2,048 samples (holding, no hook);
  copy  - `offer` copies row and prediction into preallocated 2,048-row arrays (nothing held);
  own   - a second real hook at the default rate with its own lane and sender (the switched
          "default" shares the 100% phases' lane);
  tob   - `offer` appends the row's and prediction's `tobytes()` (joined every 2,048 samples);
  ccall - `offer` is a C callable (no Python frame);
  null  - a plain object whose coin never samples (what a sink costs an unsampled request);
  ret   - sampled like the hook, `offer_plain` returns at once (the plain shortcut's sampled
          request costs the coin and one call, nothing kept);
  tob100, hold100, copy100 - the same sinks at 100%.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

SLOTS = 2048
PROBES = [
    "call",
    "hold",
    "copy",
    "own",
    "tob",
    "tob100",
    "hold100",
    "copy100",
    "ccall",
    "null",
    "ret",
]


class Call:
    """Sampled like the hook at `rate`; does nothing with the sample."""

    bodies = None  # no body lane: the plain shortcut calls `offer_plain` or `offer_rows`

    def __init__(self, rate: float) -> None:
        self.rate, self.coin = rate, random.random

    def offer(self, *args: Any) -> None:
        return None


class Ret(Call):
    def offer_plain(self, *args: Any) -> bool:
        return True


class Hold(Call):
    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.kept: list[Any] = []

    def offer(self, model: str, names: Any, inputs: Any, outputs: Any, n: Any = None) -> None:
        kept = self.kept
        kept.append(inputs[0].data)
        kept.append(outputs[0].data)
        if len(kept) >= 2 * SLOTS:
            kept.clear()


class Copy(Call):
    def __init__(self, rate: float, width: int = 20) -> None:
        super().__init__(rate)
        self.rows = np.zeros((SLOTS, width))
        self.predictions = np.zeros(SLOTS, dtype=np.int64)
        self.i = 0

    def offer(self, model: str, names: Any, inputs: Any, outputs: Any, n: Any = None) -> None:
        i = self.i
        self.rows[i : i + 1] = inputs[0].data  # one row of `width` features (the bench's)
        self.predictions[i : i + 1] = outputs[0].data
        self.i = (i + 1) % SLOTS


class ToBytes(Call):
    """`offer` keeps the row's and the prediction's bytes (`tobytes()`: one small memcpy each,
    the request's arrays are freed with the request); every 2,048 samples the batch's two
    regions are joined (`b"".join`), as a sender would build the body."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.rows: list[bytes] = []
        self.predictions: list[bytes] = []
        self.batches = 0  # not `bodies`: that is the body lane the shortcut looks for

    def offer(self, model: str, names: Any, inputs: Any, outputs: Any, n: Any = None) -> None:
        rows = self.rows
        rows.append(inputs[0].data.tobytes())
        self.predictions.append(outputs[0].data.tobytes())
        if len(rows) >= SLOTS:
            body = b"".join(rows) + b"".join(self.predictions)
            self.batches += len(body) > 0
            rows.clear()
            self.predictions.clear()


class CCall(Call):
    """`offer` is a C callable taking the five arguments (`itertools.chain`: builds and drops
    an iterator): what the call costs without a Python frame."""

    def __init__(self, rate: float) -> None:
        import itertools

        super().__init__(rate)
        self.offer = itertools.chain  # type: ignore[assignment]


def probe_sinks(full: Any, rate: float) -> dict[str, Any]:
    """The probe sinks next to `full` (the server's own 100% hook, already started)."""
    from mlkube_serving.drift_hook import DriftHook

    own = DriftHook(f"http://{full._host}:{full._port}", rate)
    full._loop.call_soon_threadsafe(own.start)
    return {
        "call": Call(rate),
        "hold": Hold(rate),
        "copy": Copy(rate),
        "own": own,
        "tob": ToBytes(rate),
        "tob100": ToBytes(1.0),
        "hold100": Hold(1.0),
        "copy100": Copy(1.0),
        "ccall": CCall(rate),
        "null": Call(0.0),
        "ret": Ret(rate),
    }
