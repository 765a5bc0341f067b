"""Per-sample server cost of the two delivery paths, in process, many repetitions.

A real server's numbers move by microseconds with the machine's load; this isolates what each
path costs the server worker per sampled one-row request (20 FP64 features, an int64 label):
- "http offer": `DriftHook.offer` (two `tobytes`, a deque append), then the sender's share
  ("http join": `ByteLane.body`, one `bytes.join` per batch of 2,048); the POST is not counted;
- "spool offer": `SpoolHook.offer`, the copy into this worker's ring (nothing else is left to
  do on the server); the sidecar's reader runs between batches, untimed.
Between batches an 8 MB array is summed so the caches are as cold as in a serving process.
The medians of `--reps` batches of 256 samples are printed, interleaved A/B/A/B.

Usage: python bench/drift/spool_cost.py [--reps 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

import numpy as np

from mlkube_serving.drift.spool import SpoolReader
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_spool import SpoolHook
from mlkube_serving.tensors import Tensor

BATCH = 256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    requests = [
        (
            [Tensor("input-0", rng.random((1, 20)), "FP64")],
            [Tensor("predict", np.array([i % 2]), "INT64")],
        )
        for i in range(BATCH)
    ]
    junk = rng.random(1 << 20)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    spool = Path(tempfile.mkdtemp(prefix="mlkube-spool-cost-", dir=shm))
    http = DriftHook("http://127.0.0.1:9", 1.0, batch_rows=BATCH)
    ring = SpoolHook("http://127.0.0.1:9", 1.0, str(spool))
    ring._writer = threading.get_ident()  # what start() records on the worker's loop
    reader = SpoolReader(spool, lambda *a: None, lambda n: None)
    times: dict[str, list[float]] = {"http offer": [], "http join": [], "spool offer": []}
    try:
        for _ in range(args.rounds):
            for _ in range(args.reps):
                junk.sum()
                t0 = time.perf_counter_ns()
                for inputs, outputs in requests:
                    http.offer("m", None, inputs, outputs)
                t1 = time.perf_counter_ns()
                for lane in list(http._lanes.values()):
                    samples = lane.drain()
                    if samples:
                        lane.body(None, samples)
                t2 = time.perf_counter_ns()
                times["http offer"].append((t1 - t0) / BATCH)
                times["http join"].append((t2 - t1) / BATCH)
                junk.sum()
                t0 = time.perf_counter_ns()
                for inputs, outputs in requests:
                    ring.offer("m", None, inputs, outputs)
                times["spool offer"].append((time.perf_counter_ns() - t0) / BATCH)
                reader.poll()
                reader.poll()
            print("  ".join(f"{k} {median(v):6.0f} ns" for k, v in times.items()), flush=True)
    finally:
        ring.ring.close()
        reader.poll()
        shutil.rmtree(spool, ignore_errors=True)
    http_total = median(times["http offer"]) + median(times["http join"])
    print(f"per sample: HTTP path {http_total:.0f} ns (+ the POST), spool "
          f"{median(times['spool offer']):.0f} ns; drops {http._drops} {ring._drops}; "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
