"""The drift hook's cost per request, in process, without HTTP or a loaded machine's noise.

The wall-clock benchmarks (serving_overhead.py, hook_ab.py) need a quiet machine to separate a
microsecond. This drives the exact per-request code the server runs after HTTP parsing — the
plain V2 shortcut (protocols/v2_plain.py) that the one-row body takes, else the V2 adapter's
`infer` (decode the JSON body, the real sklearn runtime, the hook's coin and `offer`, encode the
reply) — in a tight loop, for the hook off, at the
default rate and at 100%, and times it with `time.process_time_ns` (this process's CPU only).
The sender's work runs in the same loop where the server would run it: the lane is flushed
when full and sealed every `--per-second` requests (the server's 1 s `max_delay` at that request
rate), so stacking the batch is counted; the POST is not (no sidecar: the hook has no
connection pool, so each batch is counted dropped; ~0.3 us a sample on loopback, see
docs/benchmarks/drift-overhead.md). Configurations alternate in blocks and each reports the
minimum over repeats (CPU time only grows with interference) and the median of
its per-round difference from the hook off. `--allocs` also prints the
memory blocks each configuration leaves allocated per request (`sys.getallocatedblocks`).

Usage: python bench/drift/hook_loop.py [--model rf|lr|both] [--requests 20000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

RATES = {"off": 0.0, "default": 0.1, "100%": 1.0}
CHUNK = 256  # requests between checks for a full lane (divides the lane's 2,048 slots)
# requests per gate slot: a 5 ms slot holds ~40 of a loaded server's requests (in this loop
# it would hold ~1,000, too few slots a block to sample a steady share)
SLOT = 32


def make_plane(model_dir: Path, rate: float, seed: int) -> tuple[Any, Any]:
    """A dataplane with the model loaded as the worker loads it, and its hook (None: off).
    Below 100% the server samples by time slot (drift_gate.py): the hook samples every
    request it is shown (rate 1) and `run_block` shows it whole slots of `SLOT` requests,
    each drawn with probability `rate` (`hook.gate_rate`)."""
    from mlkube_serving.dataplane import DataPlane
    from mlkube_serving.drift_hook import DriftHook
    from mlkube_serving.runtimes import create_runtime

    hook = None
    if rate > 0:
        hook = DriftHook("http://127.0.0.1:9", rate)
        seeded = getattr(hook, "seed", None)
        if seeded is not None:
            seeded(seed)
        if rate < 1:
            hook.rate, hook.gate_rate = 1.0, rate  # type: ignore[attr-defined]
    plane = DataPlane(sink=hook)
    plane.load_model("m", None, create_runtime(str(model_dir), None))
    return plane, hook


def run_block(plane: Any, hook: Any, body: bytes, n: int, per_second: int,
              loop: asyncio.AbstractEventLoop) -> int:  # fmt: skip
    """CPU ns for `n` requests as the server's inline lane serves them (the plain V2
    shortcut, else the V2 adapter), the sender's flushes included."""
    from mlkube_serving.protocols import Call, v2
    from mlkube_serving.protocols.v2_plain import infer_plain

    call = Call(plane, "m", None, body, [])
    general = v2.infer

    view = memoryview(body)

    def infer(call: Any) -> Any:
        fresh = bytes(view)  # a new body per request, as the HTTP parser gives (a kept one costs)
        return infer_plain(plane, "m", None, fresh, []) or general(call)

    since_seal = 0
    gate = getattr(hook, "gate_rate", None)
    coin = random.Random(n).random
    start = time.process_time_ns()
    for _ in range(n // CHUNK):
        for _ in range(CHUNK // SLOT):
            if gate is not None:  # the gate's timer, once a slot (every configuration loops)
                plane.sink = hook if coin() < gate else None
            for _ in range(SLOT):
                infer(call)
        if hook is not None:
            since_seal += CHUNK
            due = since_seal >= per_second
            if due:
                since_seal = 0
            if due or hook.pending() >= hook._lane.capacity:
                loop.run_until_complete(hook.flush(seal=due))
    return time.process_time_ns() - start


def measure(model_dir: Path, requests: int, repeats: int, per_second: int,
            allocs: bool) -> dict[str, list[float]]:  # fmt: skip
    from run import request_body

    body = request_body(1)
    loop = asyncio.new_event_loop()
    planes = {label: make_plane(model_dir, rate, 1) for label, rate in RATES.items()}
    gc.collect()
    gc.freeze()  # as the worker does after loading
    times: dict[str, list[float]] = {label: [] for label in RATES}
    for plane, hook in planes.values():  # warm-up
        run_block(plane, hook, body, 4 * CHUNK, per_second, loop)
    for r in range(repeats):
        order = list(RATES)
        random.Random(r).shuffle(order)  # no configuration always runs after another
        for label in order:
            plane, hook = planes[label]
            ns = run_block(plane, hook, body, requests, per_second, loop)
            times[label].append(ns / requests / 1000)
    if allocs:
        for label, (plane, hook) in planes.items():
            gc.collect()
            before = sys.getallocatedblocks()
            run_block(plane, hook, body, requests, per_second, loop)
            gc.collect()
            grown = (sys.getallocatedblocks() - before) / requests
            print(f"  {label}: {grown:+.4f} blocks left allocated per request")
    loop.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="both", choices=["rf", "lr", "both"])
    parser.add_argument("--requests", type=int, default=5_120)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument(
        "--per-second",
        type=int,
        default=5_120,
        help="requests between sealed partial batches (the server's rate)",
    )
    parser.add_argument(
        "--server-us",
        type=float,
        default=50.0,
        help="a real server's CPU per request (HTTP included; issue 16: ~50 us)",
    )
    parser.add_argument("--allocs", action="store_true")
    args = parser.parse_args()
    from run import build_models

    names = ["rf", "lr"] if args.model == "both" else [args.model]
    with tempfile.TemporaryDirectory(prefix="hook-loop-") as tmp:
        models = build_models(Path(tmp))
        for name in names:
            times = measure(models[name], args.requests, args.repeats, args.per_second,
                            args.allocs)  # fmt: skip
            off = min(times["off"])
            parts = [f"off {off:.2f} us"]
            for label in ("default", "100%"):
                best = min(times[label])
                paired = median(a - b for a, b in zip(times[label], times["off"], strict=True))
                extra = best - off
                server = 1 - args.server_us / (args.server_us + extra)
                parts.append(f"{label} {best:.2f} us (+{extra:.2f} us, paired median "
                             f"+{paired:.2f} us; capacity loss {1 - off / best:.1%} of this "
                             f"loop, {server:.1%} of a {args.server_us:.0f} us server "
                             "request)")  # fmt: skip
            print(f"{name}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
