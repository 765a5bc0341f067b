"""What delivering one batch costs the server's sender: a POST to a real sidecar over loopback
against writing the same body into the spool ring, in CPU time of the sending process.

The sender's CPU is `time.process_time()` around each delivery (user and system time of this
process: the kernel runs the receiving side of loopback TCP in the sender's system call, so
that is counted, the sidecar's own work is not). Batches of `--batch` one-row samples (20 FP64
features, an int64 label), as `DriftHook`'s lane builds them; the two deliveries alternate,
`--reps` each; medians per sample.

Usage: python bench/drift/post_cost.py [--reps 2000] [--batch 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from run import free_port, stop, wait_ready

from mlkube_serving.drift.profile import build_profile, write_profile
from mlkube_serving.drift.spool import SpoolReader
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_ring import BATCH_RECORD, RingWriter
from mlkube_serving.tensors import Tensor


async def measure(url: str, spool: Path, reps: int, batch: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    hook = DriftHook(url, 1.0, batch_rows=batch)
    hook.start()
    for i in range(batch):
        hook.offer("m", None, [Tensor("input-0", rng.random((1, 20)), "FP64")],
                   [Tensor("predict", np.array([i % 2]), "INT64")])  # fmt: skip
    lane = next(iter(hook._lanes.values()))
    body, _, _ = lane.body(None, lane.drain())
    assert body is not None
    ring = RingWriter(spool)
    reader = SpoolReader(spool, lambda *a: None, lambda n: None)
    cpu: dict[str, list[float]] = {"POST": [], "ring put": []}
    try:
        for _ in range(reps):
            t0 = time.process_time_ns()
            assert await hook._post(body, hook._batch_head)
            t1 = time.process_time_ns()
            assert ring.put(BATCH_RECORD, 0, body, len(body), b"", 0)
            t2 = time.process_time_ns()
            reader.poll()
            cpu["POST"].append((t1 - t0) / batch)
            cpu["ring put"].append((t2 - t1) / batch)
    finally:
        ring.close()
        reader.poll()
        await hook.stop(timeout=1)
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlkube-post-cost-") as tmp:
        frame = pd.DataFrame(np.random.default_rng(1).normal(size=(3000, 20)),
                             columns=[f"x{i}" for i in range(20)])  # fmt: skip
        write_profile(build_profile(frame, window_size=1000), Path(tmp) / "profile.json")
        port, metrics_port = free_port(), free_port()
        command = [sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--profile",
                   f"{tmp}/profile.json", "--host", "127.0.0.1", "--port", str(port),
                   "--metrics-port", str(metrics_port)]  # fmt: skip
        quiet = subprocess.DEVNULL
        sidecar = subprocess.Popen(command, stdout=quiet, stderr=quiet)
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        spool = Path(tempfile.mkdtemp(prefix="mlkube-post-cost-", dir=shm))
        try:
            wait_ready(f"http://127.0.0.1:{port}/healthz", sidecar)
            cpu = asyncio.run(measure(f"http://127.0.0.1:{port}", spool, args.reps, args.batch))
        finally:
            stop(sidecar)
            shutil.rmtree(spool, ignore_errors=True)
    # process_time ticks coarsely on some kernels: report the mean too
    for name, values in cpu.items():
        print(
            f"{name:9} CPU per sample: median {median(values):6.0f} ns, "
            f"mean {sum(values) / len(values):6.0f} ns ({len(values)} batches of {args.batch})"
        )
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
