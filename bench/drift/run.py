"""Benchmark the drift sidecar: rows/s of 20-feature samples, in-process and over HTTP.

The peer measured in the same run is the engine itself, in-process (orjson decode + encode +
window + an evaluation every 1,000 rows), so the HTTP figures read as a ratio of what the
engine can do. The HTTP cases start `python -m mlkube_serving drift-sidecar` on a loopback
port and POST pre-serialised payloads from keep-alive sender threads for a few seconds; the
rate counts rows *ingested into the window* (sent, accepted, parsed and windowed), measured
until the sidecar's queue has drained, and reports drops separately.
Usage: python bench/drift/run.py [--duration 3] [--batches 100,1000] [--senders 2]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

from mlkube.devcluster.procs import free_port
from mlkube_serving.drift import synthetic
from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.profile import build_profile, write_profile

WINDOW = 1000


def bodies(batch: int, rows: int, seed: int) -> list[bytes]:
    cols = synthetic.make_columns(rows, seed=seed)
    return [orjson.dumps(p) for p in synthetic.to_payloads(cols, batch)]


def in_process(profile: dict[str, object], seconds: float) -> float:
    """Rows/s of decode + ingest + evaluation every 1,000 rows, on one core."""
    payloads = bodies(100, 50_000, seed=5)
    engine = DriftEngine(profile)
    rows, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for i, body in enumerate(payloads):
            rows += engine.ingest(orjson.loads(body))
            if i % 10 == 9:
                engine.evaluate(now="bench")
    return rows / (time.perf_counter() - started)


def get_summary(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/v1/summary")
    data: dict[str, int] = orjson.loads(conn.getresponse().read())
    conn.close()
    return data


def send_for(port: int, payloads: list[bytes], seconds: float, sent: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        conn.request("POST", "/v1/samples", payloads[n % len(payloads)], headers)
        response = conn.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"sidecar answered {response.status}")
        n += 1
    sent.append(n)
    conn.close()


def over_http(profile_path: Path, batch: int, senders: int, seconds: float) -> dict[str, float]:
    port, metrics_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--profile", str(profile_path),
            "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
            "--queue-size", "100000", "--log-level", "warning",
        ],
        env=os.environ.copy(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get_summary(port)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("sidecar did not start") from None
                time.sleep(0.05)
        payloads = bodies(batch, max(batch * 50, 20_000), seed=6)
        sent: list[int] = []
        threads = [
            threading.Thread(target=send_for, args=(port, payloads, seconds, sent))
            for _ in range(senders)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted_at = time.perf_counter() - started
        while True:  # wait for the worker to drain its queue
            summary = get_summary(port)
            if summary["samplesIngested"] + summary["samplesDropped"] >= summary["samplesReceived"]:
                break
            time.sleep(0.02)
        drained_at = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=10)
    requests_sent = sum(sent)
    return {
        "requests/s": requests_sent / accepted_at,
        "accepted rows/s": summary["samplesReceived"] / accepted_at,
        "ingested rows/s": summary["samplesIngested"] / drained_at,
        "dropped": summary["samplesDropped"],
        "drain s": drained_at - accepted_at,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--batches", default="100,1000")
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    print("building a 20-feature profile (window 1000)...", flush=True)
    profile = build_profile(
        synthetic.make_columns(20_000, seed=1),
        window_size=WINDOW,
        prediction_column=synthetic.PREDICTION,
        bootstrap_windows=300,
    )
    peer = in_process(profile, args.duration)
    print(f"in-process engine (peer): {peer:,.0f} rows/s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.json"
        write_profile(profile, path)
        for batch in (int(b) for b in args.batches.split(",")):
            result = over_http(path, batch, args.senders, args.duration)
            ratio = result["ingested rows/s"] / peer
            print(
                f"HTTP, {batch:>5} rows/POST, {args.senders} senders: "
                f"{result['ingested rows/s']:>10,.0f} rows/s ingested ({ratio:.2f} x peer), "
                f"{result['requests/s']:,.0f} req/s, dropped {result['dropped']:.0f}, "
                f"drain {result['drain s']:.2f}s"
            )
    print(f"machine: {os.cpu_count()} CPUs, possibly shared with other jobs: figures may be noisy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
