"""What drift sampling costs the model server: CPU per request and throughput with sampling at
the server's default rate and at 100% to a real drift sidecar, against the same server without
sampling, measured in the same run.

Targets (issue 16): at most 5% capacity loss (server CPU per request) at 100% sampling for
both models and at most 1% at the default rate; the throughput view (issue 6: at most 5% at
100%) is reported too. Capacity loss is the stricter and steadier view on a shared machine:
throughput moves with whatever else runs, CPU per request much less. Every configuration runs
the same model (RF-100 and logistic regression on 20 float features, as in bench/serving),
one-row V2 requests at 8 connections driven by wrk.

Every configuration runs as its own server (pinned to the same core) and each round loads all
of them at the same time, so each round's ratios compare configurations that shared the
machine's state of that moment. A 1% budget is below what one set of processes resolves: two
identical servers differ by up to ~2% for the life of the processes (memory layout), an offset
no number of rounds removes. So the servers are started afresh for every epoch (a few rounds
each) and the losses are medians over all rounds of all epochs, which averages that offset
out (address-space randomisation stays on: with it off, each configuration gets the same
layout in every epoch and keeps its offset); and a second server without sampling runs in
every round (the A/A pair), so the run prints the "loss" it measures between two identical
servers: what it resolves.
Throughput under that split is each server's share of one core (the scheduler shares it
evenly). CPU time comes from the scheduler's nanosecond counters.

A second view (bench/drift/crossover.py) cancels both the machine's moment and the processes'
offsets: two identical servers switch their sinks on the same phase boundaries in opposite
roles (A samples while B does not, then the reverse); the ratio of their per-phase ratios of
CPU per request is the cost of sampling. Its A/A pair says what it resolves.
(bench/drift/hook_ab.py, one server switched in place, is a diagnostic now: on a host with
steal its phases move by 10-20 points.)
Samples go through the shared-memory spool as in a pod (`--http`: over HTTP, the fallback).
Usage: python bench/drift/serving_overhead.py [--epochs 8] [--rounds 2] [--duration 3]
       [--crossover 210] [--phase 1.0] [--views separate,crossover] [--http]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from crossover import MEASURED as CROSSED
from crossover import measure as measure_crossover
from crossover import summary as crossover_summary
from hook_ab import SHM, spool_args
from run import (
    build_models,
    cpu_seconds,
    ensure_wrk,
    free_port,
    request_body,
    run_wrk,
    stop,
    wait_ready,
)

from mlkube_serving.drift.profile import build_profile, write_profile
from mlkube_serving.settings import Settings

DEFAULT_RATE = Settings().drift_sample_rate
# (label, sample rate or None for no drift hook at all)
CONFIGS: list[tuple[str, float | None]] = [
    ("off", None),
    ("off again", None),  # the A/A pair: the "loss" between two identical servers
    ("default", DEFAULT_RATE),
    ("100%", 1.0),
]
SAMPLED = [(label, rate) for label, rate in CONFIGS if rate is not None]
TARGETS = {"default": 1.0, "100%": 5.0}  # capacity loss, percent

# The server gets core 0 to itself; the load generator and the sidecar share core 1. In a pod
# the sidecar has its own CPU budget, so what is measured is the server's own cost of sampling,
# not two processes fighting over the same core.
SERVER_CPU, OTHERS_CPU = "0", "1"


def start(command: list[str], log: Path, env: dict[str, str], cpu: str) -> subprocess.Popen[bytes]:
    pinned = ["taskset", "-c", cpu, *command] if shutil.which("taskset") else command
    with open(log, "ab") as out:
        return subprocess.Popen(pinned, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})  # fmt: skip


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))  # fmt: skip


class Server:
    """One model server (1 worker, pinned to the server core), with or without sampling."""

    def __init__(
        self,
        model: str,
        directory: Path,
        drift_url: str,
        rate: float | None,
        workdir: Path,
        label: str,
        spool: str | None = None,
    ) -> None:
        port, metrics_port = free_port(), free_port()
        self.log = workdir / f"server-{model}-{label}.log"
        # One hash seed for every server: per-process dict layouts are one source of the
        # per-process offsets (an A/A pair differs by up to ~2%) that no number of rounds removes.
        env = {"PYTHONHASHSEED": "0"}
        if rate is not None:
            env |= {"MLKUBE_DRIFT_URL": drift_url, "MLKUBE_DRIFT_SAMPLE_RATE": str(rate)}
            if spool is not None:
                env["MLKUBE_DRIFT_SPOOL_DIR"] = spool
        self.process = start([sys.executable, "-m", "mlkube_serving", "serve", "--model-dir",
                              str(directory), "--name", model, "--host", "127.0.0.1", "--port",
                              str(port), "--metrics-port", str(metrics_port), "--workers", "1"],
                             self.log, env, SERVER_CPU)  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/v2/models/{model}/infer"
        self.metrics = f"http://127.0.0.1:{metrics_port}/metrics"

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def counters(self) -> tuple[float, float]:
        """(samples sent, samples dropped) by the drift hook."""
        sent = metric(self.metrics, "mlkube_drift_samples_sent_total")
        return sent, metric(self.metrics, "mlkube_drift_samples_send_dropped_total")


Rounds = dict[str, list[tuple[float, float]]]  # config -> [(req/s, CPU us/req) per round]
Result = tuple[Rounds, dict[str, tuple[float, float]]]  # rounds, (sent, dropped) per config
Crossed = dict[str, list[float]]  # crossover.measure's answer: per-cycle losses


def measure_model(
    model: str,
    directory: Path,
    drift_url: str,
    wrk: str,
    args: argparse.Namespace,
    workdir: Path,
    spool: str | None = None,
) -> Result:
    """Every configuration runs as its own server, all loaded at the same time in each round;
    fresh servers for every epoch.

    On a shared machine the CPU a request costs moves with what the neighbours do (caches,
    the sibling hyperthread): measured one after another, two configurations differ by more
    than the few microseconds sampling costs. Loaded together, on the same core and for the
    same seconds, they see the same neighbours, and the per-round ratio cancels them out.
    Restarting them every epoch turns each process's own offset into noise the medians average.
    """
    rounds: Rounds = {label: [] for label, _ in CONFIGS}
    sent_dropped = {label: (0.0, 0.0) for label, _ in CONFIGS}
    shuffle = random.Random(16)
    for epoch in range(args.epochs):
        configs = CONFIGS[:]
        shuffle.shuffle(configs)  # no server is always started (and laid out) first
        servers = {label: Server(model, directory, drift_url, rate, workdir, label, spool)
                   for label, rate in configs}  # fmt: skip
        dirs = {label: workdir / f"wrk-{i}" for i, label in enumerate(servers)}
        try:
            with ThreadPoolExecutor(len(servers)) as pool:
                for label, server in servers.items():
                    dirs[label].mkdir(exist_ok=True)
                    wait_ready(f"{server.base}/v2/health/ready", server.process, log=server.log)
                warm = [pool.submit(run_wrk, wrk, server.url, request_body(1), 8, 2.0,
                                    dirs[label]) for label, server in servers.items()]  # fmt: skip
                for run in warm:
                    run.result()
                labels = list(servers)
                for r in range(args.rounds):
                    before = {label: server.cpu() for label, server in servers.items()}
                    order = labels[r % len(labels) :] + labels[: r % len(labels)]
                    runs = {label: pool.submit(run_wrk, wrk, servers[label].url,
                                               request_body(1), 8, args.duration, dirs[label])
                            for label in order}  # fmt: skip
                    numbers = {label: run.result() for label, run in runs.items()}
                    for label, server in servers.items():
                        rps = float(numbers[label]["rps"])
                        cpu = server.cpu() - before[label]
                        seconds = max(1, round(args.duration))
                        rounds[label].append((rps, 1e6 * cpu / (rps * seconds)))
            for label, server in servers.items():
                sent, dropped = server.counters()
                total = sent_dropped[label]
                sent_dropped[label] = (total[0] + sent, total[1] + dropped)
        finally:
            for server in servers.values():
                stop(server.process)
        print(f"  {model} epoch {epoch + 1}/{args.epochs}: capacity loss this epoch "
              + ", ".join(f"{label} {median(losses(rounds, label)[1][-args.rounds:]):.1f}%"
                          for label, _ in CONFIGS[1:]), flush=True)  # fmt: skip
    for label, values in rounds.items():
        rps, cpu = median([v[0] for v in values]), median([v[1] for v in values])
        sent, dropped = sent_dropped[label]
        print(f"  {model} {label}: {rps:.0f} req/s, {cpu:.1f} us CPU/request (medians of "
              f"{len(values)}), sent {sent:.0f}, dropped {dropped:.0f}", flush=True)  # fmt: skip
    return rounds, sent_dropped


def losses(rounds: Rounds, label: str) -> tuple[list[float], list[float]]:
    """Per round: (throughput loss %, capacity loss %) against the same round's `off`."""
    pairs = zip(rounds["off"], rounds[label], strict=True)
    throughput, capacity = [], []
    for (off_rps, off_cpu), (rps, cpu) in pairs:
        throughput.append(100.0 * (off_rps - rps) / off_rps)
        capacity.append(100.0 * (1 - off_cpu / cpu))
    return throughput, capacity


def report_crossover(crossed: dict[str, Crossed]) -> bool:
    """The crossover view; True if the targets hold."""
    print("\nTwo servers switched in a crossover (bench/drift/crossover.py):")
    print("| model | sampling | capacity loss | middle half of cycles | cycles |")
    print("|---|---|--:|--:|--:|")
    met = True
    for model, found in crossed.items():
        names = {"off2": "off again (A/A)", "default": f"default ({DEFAULT_RATE:g})",
                 "100%": "100% (1)"}  # fmt: skip
        for label in sorted(found, key=lambda label: label != "off2"):
            name = names.get(label, f"probe {label}")
            loss, low, high = crossover_summary(found[label])
            if label in TARGETS:
                met = met and loss <= TARGETS[label]
            print(f"| {model} | {name} | {loss:.1f}% | {low:.1f} to {high:.1f}% | "
                  f"{len(found[label])} |")  # fmt: skip
    return met


def quartiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 4], ordered[(3 * len(ordered)) // 4]


def args_rounds(results: dict[str, Result]) -> int:
    return min(len(rounds["off"]) for rounds, _ in results.values())


def report_separate(results: dict[str, Result]) -> tuple[bool | None, bool | None]:
    """The separate servers' table; (capacity target met, throughput target met)."""
    if not results:
        return None, None
    print("\nSeparate servers:")
    print("| model | sampling | req/s | throughput loss | server CPU/req | capacity loss "
          "| middle half of rounds | sent | dropped |")  # fmt: skip
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    verdicts = []
    for model, (rounds, counters) in results.items():
        for label, rate in CONFIGS:
            throughput, capacity = losses(rounds, label)
            rps = median([v[0] for v in rounds[label]])
            cpu = median([v[1] for v in rounds[label]])
            sent, dropped = counters[label]
            name = label if rate is None else f"{label} ({rate:g})"
            low, high = quartiles(capacity)
            print(f"| {model} | {name} | {rps:,.0f} | {median(throughput):.1f}% | {cpu:.1f} us | "
                  f"{median(capacity):.1f}% | {low:.1f} to {high:.1f}% | "
                  f"{sent:,.0f} | {dropped:,.0f} |")  # fmt: skip
            if label in TARGETS:
                verdicts.append((label, median(capacity), median(throughput)))
    print(
        f"Losses are medians of per-round ratios over {args_rounds(results)} rounds (each "
        "round loads every configuration at the same time on the same core; fresh servers "
        "every epoch). The 'off again' row is the A/A pair: the loss this view measures "
        "between two identical servers, i.e. what it resolves."
    )
    met = all(capacity <= TARGETS[label] for label, capacity, _ in verdicts)
    return met, all(loss <= 5.0 for label, _, loss in verdicts if label == "100%")


def verdict(met: bool | None) -> str:
    return "not run" if met is None else "met" if met else "NOT met"


def report(
    results: dict[str, Result], summary: dict[str, object], crossed: dict[str, Crossed]
) -> None:
    """Both views' tables (default rate and 100%) and whether the targets hold."""
    met, throughput_met = report_separate(results)
    crossed_met = report_crossover(crossed) if crossed else None
    print(
        f"\nSidecar window: {summary.get('windowSamples')} samples.\n"
        f"Target (issue 16): capacity loss (server CPU per request) <= 5% at 100% sampling and "
        f"<= 1% at the default rate {DEFAULT_RATE:g}, both models:\n"
        f"  separate servers: {verdict(met)}; crossover: {verdict(crossed_met)}.\n"
        f"Throughput view (issue 6): <= 5% throughput loss at 100% sampling (separate servers): "
        f"{verdict(throughput_met)} (noisier: moves with the machine's other load)."
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores, shared machine)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=8,
                        help="fresh servers for each epoch")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="rounds per epoch")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--views", default="separate,crossover")
    parser.add_argument("--models", default="rf,lr")
    parser.add_argument("--sinks", default=",".join(CROSSED),
                        help="the crossover's measured sinks (hook_ab.py's probes: zero, call, "
                        "hold, copy, own, tob, ccall, null, ret; coin: the default rate by a "
                        "coin per request, as before the gate)")  # fmt: skip
    parser.add_argument("--crossover", type=float, default=210.0,
                        help="seconds of load on the crossover pair, per model")  # fmt: skip
    # 1 s: the hook's own flush period (max_delay); shorter phases deliver more often than a
    # server does and charge the difference to the hook.
    parser.add_argument("--phase", type=float, default=1.0,
                        help="seconds per crossover phase")  # fmt: skip
    parser.add_argument("--http", action="store_true",
                        help="samples over HTTP (no spool), the fallback path")  # fmt: skip
    args = parser.parse_args()
    wrk = ensure_wrk()
    if shutil.which("taskset"):
        wrk_pinned = Path(tempfile.mkdtemp()) / "wrk"
        wrk_pinned.write_text(f'#!/bin/sh\nexec taskset -c {OTHERS_CPU} {wrk} "$@"\n')
        wrk_pinned.chmod(0o755)
        wrk = str(wrk_pinned)
    with tempfile.TemporaryDirectory(prefix="mlkube-drift-overhead-") as tmp:
        workdir = Path(tmp)
        models = {k: v for k, v in build_models(workdir).items() if k in args.models.split(",")}
        x, _ = make_classification(n_samples=5000, n_features=20, random_state=0)
        frame = pd.DataFrame(np.asarray(x), columns=[f"x{i}" for i in range(20)])
        profile_path = workdir / "profile.json"
        write_profile(build_profile(frame, window_size=1000), profile_path)
        side_port, side_metrics = free_port(), free_port()
        # As in a pod: the server's samples through a memory-backed spool the sidecar polls.
        spool = None if args.http else tempfile.mkdtemp(prefix="mlkube-spool-", dir=SHM)
        print(f"samples {'over HTTP' if spool is None else 'through the spool ' + spool}")
        sidecar = start([sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--profile",
                         str(profile_path), "--host", "127.0.0.1", "--port", str(side_port),
                         "--metrics-port", str(side_metrics), *spool_args(spool)],
                        workdir / "sidecar.log", {}, OTHERS_CPU)  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{side_port}/v1/summary", sidecar)
            drift_url = f"http://127.0.0.1:{side_port}"
            views = args.views.split(",")
            results = {name: measure_model(name, path, drift_url, wrk, args, workdir, spool)
                       for name, path in models.items() if "separate" in views}  # fmt: skip
            pin = ["taskset", "-c", SERVER_CPU] if shutil.which("taskset") else []
            crossed = {name: measure_crossover(path, drift_url, wrk, args.crossover, args.phase,
                                               workdir, pin, spool, args.sinks.split(","))
                       for name, path in models.items() if "crossover" in views}  # fmt: skip
            with urllib.request.urlopen(f"http://127.0.0.1:{side_port}/v1/summary") as resp:
                summary = json.load(resp)
        finally:
            stop(sidecar)
            if spool is not None:
                shutil.rmtree(spool, ignore_errors=True)
    report(results, summary, crossed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
