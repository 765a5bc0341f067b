"""CPU the drift hook costs the model server per sampled request, without the HTTP server around it.

The end-to-end benchmark (serving_overhead.py) sees the hook's cost through wrk and a shared
machine, where a few microseconds drown in noise. This drives `DriftHook.offer` on an asyncio
loop at a server-like pace (bursts of requests, then a yield so the sender task flushes every
few milliseconds as it would between requests), against a real drift sidecar in another
process, and measures this process's CPU time per request with and without the hook, in
interleaved rounds. `--profile` prints where the time goes (cProfile, by own time).

Run it against another checkout's hook with PYTHONPATH=<checkout>/serving-image:<checkout>/operator
(the sidecar always runs from this checkout). Usage: python bench/drift/hook_cost.py [--requests N]
[--rounds R] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlkube_serving.drift.profile import build_profile, write_profile
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.tensors import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from run import free_port, wait_ready

SPLIT: list[tuple[float, float]] = []  # (user, system) seconds of each drive()
BURST = 20  # requests between yields: ~20k req/s with the 1 ms sleep below


def served() -> tuple[list[Tensor], list[Tensor]]:
    """What the dataplane hands the hook for one V2 request of one row of 20 FP64 features."""
    row = np.random.default_rng(0).normal(size=(1, 20))
    label = np.array([1], dtype=np.int64)
    proba = np.array([[0.3, 0.7]], dtype=np.float32)
    return [Tensor("input-0", row, "FP64")], [
        Tensor("predict", label, "INT64"),
        Tensor("predict_proba", proba, "FP32"),
    ]


async def drive(hook: DriftHook | None, requests: int) -> float:
    """CPU seconds of this process for `requests` offers at a server-like pace."""
    inputs, outputs = served()
    if hook is not None:
        hook.start()
    before, started = os.times(), time.process_time()
    for i in range(requests):
        # what the dataplane does per request besides the hook: rebuild the tensors
        inputs = [Tensor("input-0", inputs[0].data.copy(), "FP64")]
        if hook is not None:
            hook.offer("m", None, inputs, outputs, 20)
        if i % BURST == BURST - 1:
            await asyncio.sleep(0.001)
    if hook is not None:
        await hook.stop()
    cpu, after = time.process_time() - started, os.times()
    SPLIT.append((after.user - before.user, after.system - before.system))  # 10 ms ticks
    return cpu


def measure(url: str, requests: int, sampled: bool, profile: cProfile.Profile | None) -> float:
    hook = DriftHook(url, 1.0) if sampled else None
    if profile is not None:
        profile.enable()
    cpu = asyncio.run(drive(hook, requests))
    if profile is not None:
        profile.disable()
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlkube-hook-cost-") as tmp:
        x = np.random.default_rng(1).normal(size=(5000, 20))
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(20)])
        profile_path = Path(tmp) / "profile.json"
        write_profile(build_profile(frame, window_size=1000), profile_path)
        port, metrics_port = free_port(), free_port()
        here = Path(__file__).resolve().parents[2]
        env = {
            **os.environ,
            "PYTHONPATH": f"{here / 'serving-image'}:{here / 'operator'}",
        }
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--profile",
             str(profile_path), "--host", "127.0.0.1", "--port", str(port),
             "--metrics-port", str(metrics_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(f"{url}/v1/summary", sidecar)
            measure(url, args.requests // 10, True, None)  # warm-up
            plain: list[float] = []
            sampled: list[float] = []
            for _ in range(args.rounds):
                plain.append(measure(url, args.requests, False, None))
                sampled.append(measure(url, args.requests, True, None))
            us = 1e6 / args.requests
            extra = [us * (s - p) for s, p in zip(sampled, plain, strict=True)]
            print(
                f"hook from {DriftHook.__module__} ({sys.modules[DriftHook.__module__].__file__})\n"
                f"  CPU/request without hook: {us * min(plain):.2f} us; with hook at 100%: "
                f"{us * min(sampled):.2f} us; extra per sampled request: "
                f"{us * (min(sampled) - min(plain)):.2f} us "
                f"(per round: {', '.join(f'{e:.2f}' for e in extra)})"
            )
            print("  user/system us per request, per drive (plain, sampled alternate): "
                  + ", ".join(f"{us * u:.2f}/{us * s:.2f}" for u, s in SPLIT[1:]))  # fmt: skip
            if args.profile:
                prof = cProfile.Profile()
                measure(url, args.requests, True, prof)
                stats: Any = pstats.Stats(prof)
                stats.sort_stats("tottime").print_stats(18)
        finally:
            sidecar.terminate()
            sidecar.wait(10)
    print(f"load average: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
