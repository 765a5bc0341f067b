"""What drift sampling costs the model server: throughput with sampling at 100% to a real drift
sidecar, against the same server without sampling, measured in the same run.

Issue target: the server loses at most 5% throughput at 100% sampling. Both configurations run
the same model (RF-100 and logistic regression on 20 float features, as in bench/serving),
one-row V2 requests at 8 connections driven by wrk, alternating rounds (best of N) so a busy
neighbour hurts both alike. Usage: python bench/drift/serving_overhead.py [--rounds 2]
[--duration 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from run import (
    build_models,
    ensure_wrk,
    free_port,
    request_body,
    run_wrk,
    stop,
    wait_ready,
)

from mlkube_serving.drift.profile import build_profile, write_profile


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})  # fmt: skip


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))  # fmt: skip


def serve_and_measure(
    model: str, directory: Path, drift_url: str | None, wrk: str, seconds: float, workdir: Path
) -> tuple[float, float, float]:
    port, metrics_port = free_port(), free_port()
    env = {"MLKUBE_DRIFT_SAMPLE_RATE": "1.0"}
    if drift_url:
        env["MLKUBE_DRIFT_URL"] = drift_url
    process = start([sys.executable, "-m", "mlkube_serving", "serve", "--model-dir",
                     str(directory), "--name", model, "--host", "127.0.0.1", "--port", str(port),
                     "--metrics-port", str(metrics_port), "--workers", "1"],
                    workdir / f"server-{model}.log", env)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/v2/health/ready", process)
        url = f"{base}/v2/models/{model}/infer"
        run_wrk(wrk, url, request_body(1), 8, 1.0, workdir)  # warm-up
        numbers = run_wrk(wrk, url, request_body(1), 8, seconds, workdir)
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        sent = metric(metrics, "mlkube_drift_samples_sent_total")
        dropped = metric(metrics, "mlkube_drift_samples_send_dropped_total")
        return float(numbers["rps"]), sent, dropped
    finally:
        stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="mlkube-drift-overhead-") as tmp:
        workdir = Path(tmp)
        models = build_models(workdir)
        x, _ = make_classification(n_samples=5000, n_features=20, random_state=0)
        frame = pd.DataFrame(np.asarray(x), columns=[f"x{i}" for i in range(20)])
        profile_path = workdir / "profile.json"
        write_profile(build_profile(frame, window_size=1000), profile_path)
        side_port, side_metrics = free_port(), free_port()
        sidecar = start([sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--profile",
                         str(profile_path), "--host", "127.0.0.1", "--port", str(side_port),
                         "--metrics-port", str(side_metrics)],
                        workdir / "sidecar.log", {})  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{side_port}/v1/summary", sidecar)
            drift_url = f"http://127.0.0.1:{side_port}"
            rows = []
            for model, directory in models.items():
                plain, sampled, sent, dropped = 0.0, 0.0, 0.0, 0.0
                for _ in range(args.rounds):
                    plain = max(plain, serve_and_measure(model, directory, None, wrk,
                                                         args.duration, workdir)[0])  # fmt: skip
                    rps, s, d = serve_and_measure(model, directory, drift_url, wrk,
                                                  args.duration, workdir)  # fmt: skip
                    if rps > sampled:
                        sampled, sent, dropped = rps, s, d
                loss = 100.0 * (plain - sampled) / plain
                rows.append((model, plain, sampled, loss, sent, dropped))
                print(
                    f"  {model}: {plain:.0f} req/s without sampling, {sampled:.0f} with "
                    f"100% sampling ({loss:+.1f}% loss), samples sent {sent:.0f}, "
                    f"dropped {dropped:.0f}",
                    flush=True,
                )
            with urllib.request.urlopen(f"http://127.0.0.1:{side_port}/v1/summary") as resp:
                summary = json.load(resp)
        finally:
            stop(sidecar)
    print("\n| model | req/s, no sampling | req/s, 100% sampling | loss | sent | dropped |")
    print("|---|--:|--:|--:|--:|--:|")
    for model, plain, sampled, loss, sent, dropped in rows:
        print(
            f"| {model} | {plain:,.0f} | {sampled:,.0f} | {loss:.1f}% | {sent:,.0f} | "
            f"{dropped:,.0f} |"
        )
    print(
        f"\nsidecar window: {summary.get('windowSamples', summary.get('samples'))} samples; "
        f"target: loss <= 5% ({'met' if all(r[3] <= 5 for r in rows) else 'NOT met'})"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores, shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
