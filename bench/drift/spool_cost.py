"""Per-sample server cost of delivering drift samples, in process, many repetitions.

A real server's numbers move by microseconds with the machine's load; this isolates what each
step costs the server worker per sampled one-row request (20 FP64 features, an int64 label):
- "offer": `DriftHook.offer` (two `tobytes`, a deque append), the request path of both paths;
- "join": the sender's `ByteLane.body`, one `bytes.join` per batch of 256;
- "ring put": the spool's delivery of that body (`RingWriter.put`, one record); over HTTP the
  POST takes its place (~0.34 us a sample in a server: drift-overhead.md, fourth pass);
- "per-sample put": the alternative the fifth pass measured and left out, each sample's two
  arrays written into the ring as its own record (`RingWriter.put` of a registered layout).
The sidecar's reader runs between batches, untimed. Between batches an 8 MB array is summed so
the caches are as cold as in a serving process. Medians of `--reps` batches, per round.

Usage: python bench/drift/spool_cost.py [--reps 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

from mlkube_serving.drift.spool import SpoolReader
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_ring import BATCH_RECORD, RingWriter
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
    hook = DriftHook("http://127.0.0.1:9", 1.0, batch_rows=BATCH)
    ring = RingWriter(spool, 4 * 1024 * 1024)
    layout = ring.layout("m", None, 20, np.dtype("<f8"), np.dtype("<i8"))
    reader = SpoolReader(spool, lambda *a: None, lambda n: None)
    times: dict[str, list[float]] = {"offer": [], "join": [], "ring put": [], "per-sample put": []}
    try:
        for _ in range(args.rounds):
            for _ in range(args.reps):
                junk.sum()
                t0 = time.perf_counter_ns()
                for inputs, outputs in requests:
                    hook.offer("m", None, inputs, outputs)
                t1 = time.perf_counter_ns()
                lane = next(iter(hook._lanes.values()))
                body, _, _ = lane.body(None, lane.drain())
                assert body is not None
                t2 = time.perf_counter_ns()
                assert ring.put(BATCH_RECORD, 0, body, len(body), b"", 0)
                t3 = time.perf_counter_ns()
                reader.poll()
                reader.poll()
                junk.sum()
                t4 = time.perf_counter_ns()
                for inputs, outputs in requests:
                    data, pred = inputs[0].data, outputs[0].data
                    ring.put(layout, 1, data, data.nbytes, pred, pred.nbytes)
                t5 = time.perf_counter_ns()
                reader.poll()
                reader.poll()
                for key, ns in zip(times, (t1 - t0, t2 - t1, t3 - t2, t5 - t4), strict=True):
                    times[key].append(ns / BATCH)
            print("  ".join(f"{k} {median(v):5.0f} ns" for k, v in times.items()), flush=True)
    finally:
        ring.close()
        reader.poll()
        shutil.rmtree(spool, ignore_errors=True)
    spooled = median(times["offer"]) + median(times["join"]) + median(times["ring put"])
    print(f"per sample: spool {spooled:.0f} ns (offer + join + ring put; HTTP: the same "
          f"but the POST instead of the put), per-sample ring writes "
          f"{median(times['per-sample put']):.0f} ns (+ the checks of an offer); "
          f"drops {hook._drops}; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
