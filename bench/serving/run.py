"""Benchmark the mlkube model server against MLServer on the same models and the same load.

    python bench/serving/run.py [--duration 4] [--workers N] [--nice -5]

Builds a 100-tree random forest and a logistic regression (make_classification, 20 float
features), installs MLServer 1.7.1 with mlserver-sklearn into its own venv under
.cache/bench/mlserver-venv (once), then serves each model with MLServer and with mlkube, one
server at a time, and drives both with wrk (Debian's, with a Lua script for the POST body) at
concurrency 1, 8, 32 and 64 with one-row requests and at concurrency 8 with 64-row requests.
Prints req/s, p50 and p99 per case and the mlkube/MLServer throughput ratio as a Markdown table,
and stores the raw numbers in bench/results/serving.json.

In the same run, measured the same way: the floor (bench/serving/echo_app.py: the same uvicorn,
uvloop and httptools answering a fixed V2 response without any work) and mlkube with adaptive
batching on (MLKUBE_MAX_BATCH_SIZE=64, 5 ms). A second table gives mlkube as a share of the
floor (issue 19's target: at least 0.7 at one row, c=8, with p99 at most 0.5 ms) and what
batching gains or costs per case. A third compares the Open Inference Protocol over gRPC:
ghz (hack/ghz/build.sh) driving MLServer's and mlkube's ModelInfer at c=1 and c=8.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from grpc_load import GRPC_CASES, ensure_ghz, infer_request, run_ghz, write_protoset
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlkube.devcluster.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "bench"
MLSERVER_VENV = CACHE / "mlserver-venv"
RESULTS = ROOT / "bench" / "results"
MLSERVER_REQUIREMENTS = [
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop<0.22",
    f"scikit-learn=={sklearn.__version__}",  # same version, so both unpickle the same model
]
# (label, rows per request, concurrency)
CASES = [
    ("1 row, c=1", 1, 1),
    ("1 row, c=8", 1, 8),
    ("1 row, c=32", 1, 32),
    ("1 row, c=64", 1, 64),
    ("64 rows, c=8", 64, 8),
]
FLOOR_CASE = "1 row, c=8"  # where the floor ratio target applies
FLOOR_RATIO_TARGET = 0.7
FLOOR_P99_TARGET_MS = 0.5
FLOOR_ROUNDS = 6  # interleaved floor/mlkube turns per model at FLOOR_CASE
BATCH_ENV = {"MLKUBE_MAX_BATCH_SIZE": "64", "MLKUBE_MAX_BATCH_LATENCY_MS": "5"}
ECHO_DIR = Path(__file__).resolve().parent


@dataclass
class Measurement:
    server: str
    model: str
    case: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float | None = None  # the server's CPU per request (interleaved rounds only)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0:
        print("installing wrk from Debian ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is required: apt-get install -y wrk")
    return found


def ensure_mlserver() -> Path:
    """Create the MLServer venv once; the marker records what was installed."""
    marker = MLSERVER_VENV / "mlkube-requirements.txt"
    wanted = "\n".join(MLSERVER_REQUIREMENTS)
    if marker.exists() and marker.read_text() == wanted:
        return MLSERVER_VENV / "bin" / "mlserver"
    print(f"installing {', '.join(MLSERVER_REQUIREMENTS)} into {MLSERVER_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(MLSERVER_VENV)], check=True)
    pip = [str(MLSERVER_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *MLSERVER_REQUIREMENTS], check=True)
    marker.write_text(wanted)
    return MLSERVER_VENV / "bin" / "mlserver"


def build_models(workdir: Path) -> dict[str, Path]:
    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    models = {
        "rf": RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y),
        "lr": LogisticRegression(max_iter=1000).fit(X, y),
    }
    paths = {}
    for name, estimator in models.items():
        directory = workdir / "models" / name
        directory.mkdir(parents=True)
        joblib.dump(estimator, directory / "model.joblib")
        settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }
        (directory / "model-settings.json").write_text(json.dumps(settings))
        paths[name] = directory
    return paths


def request_body(rows: int) -> bytes:
    data = np.random.default_rng(rows).normal(size=(rows, 20)).round(6)
    tensor = {"name": "input-0", "shape": [rows, 20], "datatype": "FP64", "data": data.tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def wait_ready(
    url: str, process: subprocess.Popen[bytes], timeout: float = 180.0, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = ""
            if log is not None and log.exists():  # the workdir goes with the run: show why now
                tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            sys.exit(f"server exited with {process.returncode} before it was ready ({url}){tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"server at {url} not ready after {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process, its threads and its children (a server's
    workers), from the scheduler's nanosecond counters: /proc/PID/stat counts in 10 ms ticks,
    too coarse for a few microseconds per request over a few seconds."""
    total = 0
    for process in [pid, *children(pid)]:
        for task in Path(f"/proc/{process}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found] + [g for c in found for g in children(int(c))]


def run_wrk(
    wrk: str, url: str, body: bytes, connections: int, seconds: float, workdir: Path,
    server_pid: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """wrk's numbers; with `server_pid`, also that server's CPU per request ("cpu_us"): the
    capacity view, steadier than req/s when the scheduler moves wrk and the server around."""
    body_file = workdir / f"body-{len(body)}.json"
    body_file.write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()\n'
    )
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = [wrk, "-t1", f"-c{connections}", duration, "--latency", "-s", str(script), url]
    before = cpu_seconds(server_pid) if server_pid else 0.0
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    numbers = parse_wrk(output)
    if server_pid and numbers["requests"]:
        used = cpu_seconds(server_pid) - before
        numbers["cpu_us"] = used / numbers["requests"] * 1e6
    return numbers


def _duration_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _duration_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _duration_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        match = re.search(pattern, output)
        if match:
            errors += sum(int(g) for g in match.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors, "requests": requests}


def measure(
    server: str, model: str, url: str, wrk: str, seconds: float, workdir: Path
) -> list[Measurement]:
    run_wrk(wrk, url, request_body(1), 8, 1.0, workdir)  # warm-up, discarded
    results = []
    for label, rows, connections in CASES:
        numbers = run_wrk(wrk, url, request_body(rows), connections, seconds, workdir)
        results.append(
            Measurement(
                server,
                model,
                label,
                numbers["rps"],
                numbers["p50"],
                numbers["p99"],
                numbers["errors"],
            )
        )
        print(
            f"  {server:8} {model} {label:13} {numbers['rps']:9.0f} req/s"
            f"  p50 {numbers['p50']:7.2f} ms  p99 {numbers['p99']:7.2f} ms"
            f"  errors {numbers['errors']}",
            flush=True,
        )
    return results


@dataclass(frozen=True)
class Grpc:
    """How to load a gRPC server: ghz and the protocol's protoset."""

    ghz: str
    protoset: Path


def measure_grpc(server: str, model: str, address: str, grpc: Grpc, seconds: float
                 ) -> list[Measurement]:  # fmt: skip
    run_ghz(grpc.ghz, grpc.protoset, address, infer_request(model, 1), 8, 1.0)  # warm-up
    results = []
    for label, rows, concurrency in GRPC_CASES:
        numbers = run_ghz(grpc.ghz, grpc.protoset, address, infer_request(model, rows),
                          concurrency, seconds)  # fmt: skip
        results.append(Measurement(server, model, label, numbers["rps"], numbers["p50"],
                                   numbers["p99"], numbers["errors"]))  # fmt: skip
        print(f"  {server:8} {model} {label:13} {numbers['rps']:9.0f} req/s"
              f"  p50 {numbers['p50']:7.2f} ms  p99 {numbers['p99']:7.2f} ms"
              f"  errors {numbers['errors']}", flush=True)  # fmt: skip
    return results


def bench_mlserver(
    mlserver: Path,
    models: dict[str, Path],
    wrk: str,
    seconds: float,
    workdir: Path,
    grpc_load: Grpc | None = None,
) -> list[Measurement]:
    repo = workdir / "models"
    port, grpc, metrics = free_port(), free_port(), free_port()
    settings = {
        "http_port": port,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "debug": False,
        "host": "127.0.0.1",
    }
    (repo / "settings.json").write_text(json.dumps(settings))
    log = open(workdir / "mlserver.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(mlserver), "start", str(repo)], stdout=log, stderr=subprocess.STDOUT, cwd=repo
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for name in models:
            wait_ready(f"{base}/v2/models/{name}/ready", process)
        results = []
        for name in models:
            results += measure(
                "MLServer", name, f"{base}/v2/models/{name}/infer", wrk, seconds, workdir
            )
            if grpc_load is not None:
                results += measure_grpc("MLServer", name, f"127.0.0.1:{grpc}", grpc_load, seconds)
        return results
    finally:
        stop(process)
        log.close()


@contextlib.contextmanager
def floor_server(workers: int, workdir: Path) -> Iterator[tuple[str, int]]:
    """The echo floor running; yields its base URL and process id."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "echo_app:create_app", "--app-dir",
        str(ECHO_DIR), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--backlog", "2048",
        "--lifespan", "off",
    ]  # fmt: skip
    log = open(workdir / "floor.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/ready", process)
        yield base, process.pid
    finally:
        stop(process)
        log.close()


def bench_floor(
    models: dict[str, Path], workers: int, wrk: str, seconds: float, workdir: Path
) -> list[Measurement]:
    """The echo floor, under each model's label (its answer does not depend on the model)."""
    with floor_server(workers, workdir) as (base, _):
        results = []
        for name in models:
            results += measure("floor", name, f"{base}/v2/models/{name}/infer", wrk, seconds,
                               workdir)  # fmt: skip
        return results


@contextlib.contextmanager
def mlkube_server(
    name: str, directory: Path, workers: int, workdir: Path, label: str = "mlkube",
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[str, str, int]]:  # fmt: skip
    """mlkube serving one model; yields its base URL, gRPC address and process id."""
    port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "mlkube_serving", "serve", "--model-dir", str(directory),
        "--name", name, "--host", "127.0.0.1", "--port", str(port),
        "--metrics-port", str(free_port()), "--workers", str(workers),
        "--grpc-port", str(grpc_port),
    ]  # fmt: skip
    log = open(workdir / f"{label}-{name}.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra_env or {})
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/v2/health/ready", process)
        with urllib.request.urlopen(f"{base}/v2/models/{name}") as answer:
            runtime = json.load(answer)["platform"]
        print(f"  {label} serves {name} with {runtime}", flush=True)
        yield base, f"127.0.0.1:{grpc_port}", process.pid
    finally:
        stop(process)
        log.close()


def bench_floor_interleaved(
    models: dict[str, Path], workers: int, wrk: str, seconds: float, workdir: Path,
    rounds: int = FLOOR_ROUNDS,
) -> list[Measurement]:  # fmt: skip
    """The target case, floor and mlkube alternated (ABBA) with both servers up and idle
    between turns: on a shared machine the speed drifts by tens of percent within minutes,
    and back-to-back turns see the same machine; the verdict takes the median ratio."""
    _, rows, connections = next(c for c in CASES if c[0] == FLOOR_CASE)
    body = request_body(rows)
    results: list[Measurement] = []
    with floor_server(workers, workdir) as (floor_base, floor_pid):
        for name, directory in models.items():
            with mlkube_server(name, directory, workers, workdir, "mlkube-ab") as (base, _, pid):
                urls = {"floor": f"{floor_base}/v2/models/{name}/infer",
                        "mlkube": f"{base}/v2/models/{name}/infer"}  # fmt: skip
                pids = {"floor": floor_pid, "mlkube": pid}
                for url in urls.values():
                    run_wrk(wrk, url, body, connections, 1.0, workdir)  # warm-up
                for turn in range(rounds):
                    order = ("floor", "mlkube") if turn % 2 == 0 else ("mlkube", "floor")
                    got = {}
                    for server in order:
                        n = run_wrk(wrk, urls[server], body, connections, seconds, workdir,
                                    pids[server])  # fmt: skip
                        case = f"round {turn + 1}"
                        got[server] = Measurement(f"{server}-ab", name, case, n["rps"],
                                                  n["p50"], n["p99"], n["errors"],
                                                  n.get("cpu_us"))  # fmt: skip
                    results += got.values()
                    floor_rps = got["floor"].requests_per_second
                    ours_rps = got["mlkube"].requests_per_second
                    print(f"  floor/mlkube {name} round {turn + 1}: {floor_rps:,.0f} / "
                          f"{ours_rps:,.0f} req/s", flush=True)  # fmt: skip
    return results


def bench_mlkube(
    models: dict[str, Path],
    workers: int,
    wrk: str,
    seconds: float,
    workdir: Path,
    label: str = "mlkube",
    extra_env: dict[str, str] | None = None,
    grpc_load: Grpc | None = None,
) -> list[Measurement]:
    results = []
    for name, directory in models.items():
        with mlkube_server(name, directory, workers, workdir, label, extra_env) as (
            base, grpc, _,
        ):  # fmt: skip
            results += measure(label, name, f"{base}/v2/models/{name}/infer", wrk, seconds,
                               workdir)  # fmt: skip
            if grpc_load is not None:
                results += measure_grpc(label, name, grpc, grpc_load, seconds)
    return results


def table(results: list[Measurement], cases: list[tuple[str, int, int]] = CASES) -> str:
    by_key = {(m.server, m.model, m.case): m for m in results}
    lines = [
        "| model | case | MLServer req/s | p50 ms | p99 ms "
        "| mlkube req/s | p50 ms | p99 ms | mlkube/MLServer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model in ("rf", "lr"):
        for label, _, _ in cases:
            theirs, ours = (
                by_key.get(("MLServer", model, label)),
                by_key.get(("mlkube", model, label)),
            )
            if theirs is None or ours is None:
                continue
            ratio = (
                ours.requests_per_second / theirs.requests_per_second
                if theirs.requests_per_second
                else float("inf")
            )
            lines.append(
                f"| {model} | {label} | {theirs.requests_per_second:,.0f} "
                f"| {theirs.p50_ms:.2f} | {theirs.p99_ms:.2f} "
                f"| {ours.requests_per_second:,.0f} | {ours.p50_ms:.2f} | {ours.p99_ms:.2f} "
                f"| {ratio:.1f}x |"
            )
    return "\n".join(lines)


def floor_table(results: list[Measurement]) -> str:
    """mlkube against the floor, and batching's effect, per model and case."""
    by_key = {(m.server, m.model, m.case): m for m in results}
    lines = [
        "| model | case | floor req/s | mlkube req/s | p99 ms | mlkube/floor "
        "| batched req/s | p50 ms | p99 ms | batched/unbatched |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model in ("rf", "lr"):
        for label, _, _ in CASES:
            floor = by_key.get(("floor", model, label))
            ours = by_key.get(("mlkube", model, label))
            batched = by_key.get(("mlkube+batch", model, label))
            if floor is None or ours is None or batched is None:
                continue
            lines.append(
                f"| {model} | {label} | {floor.requests_per_second:,.0f} "
                f"| {ours.requests_per_second:,.0f} | {ours.p99_ms:.2f} "
                f"| {ratio(ours, floor):.2f} | {batched.requests_per_second:,.0f} "
                f"| {batched.p50_ms:.2f} | {batched.p99_ms:.2f} | {ratio(batched, ours):.2f} |"
            )
    return "\n".join(lines)


def ratio(a: Measurement, b: Measurement) -> float:
    return a.requests_per_second / b.requests_per_second if b.requests_per_second else 0.0


def cpu_share(floor: Measurement, ours: Measurement) -> float:
    """The floor's CPU per request over mlkube's: the capacity ratio (1.0: as cheap)."""
    return (floor.cpu_us or 0.0) / ours.cpu_us if ours.cpu_us else 0.0


def interleaved(results: list[Measurement], model: str) -> list[tuple[Measurement, Measurement]]:
    """(floor, mlkube) per round of `bench_floor_interleaved`."""
    by_key = {(m.server, m.model, m.case): m for m in results}
    pairs = []
    for turn in range(1, 1 + sum(m.server == "floor-ab" and m.model == model for m in results)):
        floor = by_key.get(("floor-ab", model, f"round {turn}"))
        ours = by_key.get(("mlkube-ab", model, f"round {turn}"))
        if floor is not None and ours is not None:
            pairs.append((floor, ours))
    return pairs


def interleaved_table(results: list[Measurement]) -> str:
    lines = [
        "| model | round | floor req/s | floor p99 ms | mlkube req/s | mlkube p99 ms "
        "| mlkube/floor | floor CPU us/req | mlkube CPU us/req | floor/mlkube CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model in ("rf", "lr"):
        for turn, (floor, ours) in enumerate(interleaved(results, model), 1):
            lines.append(
                f"| {model} | {turn} | {floor.requests_per_second:,.0f} | {floor.p99_ms:.2f} "
                f"| {ours.requests_per_second:,.0f} | {ours.p99_ms:.2f} "
                f"| {ratio(ours, floor):.2f} | {floor.cpu_us or 0:.1f} | {ours.cpu_us or 0:.1f} "
                f"| {cpu_share(floor, ours):.2f} |"
            )
    return "\n".join(lines)


def floor_verdict(results: list[Measurement]) -> list[str]:
    """Whether mlkube reaches the floor targets at FLOOR_CASE, per model: the median of the
    interleaved rounds when there are any, else the one measurement of each."""
    by_key = {(m.server, m.model, m.case): m for m in results}
    lines = []
    for model in ("rf", "lr"):
        pairs = interleaved(results, model)
        if pairs:
            share = statistics.median(ratio(ours, floor) for floor, ours in pairs)
            p99 = statistics.median(ours.p99_ms for _, ours in pairs)
            floor_p99 = statistics.median(floor.p99_ms for floor, _ in pairs)
            how = f"median of {len(pairs)} interleaved rounds"
        else:
            floor = by_key.get(("floor", model, FLOOR_CASE))
            ours = by_key.get(("mlkube", model, FLOOR_CASE))
            if floor is None or ours is None:
                continue
            share, p99, floor_p99 = ratio(ours, floor), ours.p99_ms, floor.p99_ms
            how = "one run each"
        met = share >= FLOOR_RATIO_TARGET and p99 <= FLOOR_P99_TARGET_MS
        lines.append(
            f"{model}, {FLOOR_CASE}: mlkube at {share:.2f}x the floor (target >= "
            f"{FLOOR_RATIO_TARGET}), p99 {p99:.2f} ms (target <= {FLOOR_P99_TARGET_MS}; the "
            f"floor's own p99 {floor_p99:.2f} ms), {how}: " + ("met" if met else "NOT met")
        )
        if pairs and all(ours.cpu_us for _, ours in pairs):
            capacity = statistics.median(cpu_share(floor, ours) for floor, ours in pairs)
            cpu = statistics.median(ours.cpu_us or 0.0 for _, ours in pairs)
            floor_cpu = statistics.median(floor.cpu_us or 0.0 for floor, _ in pairs)
            lines.append(
                f"  capacity view (server CPU per request, not the target): mlkube {cpu:.1f} us, "
                f"the floor {floor_cpu:.1f} us, {capacity:.2f}x the floor's capacity"
            )
    return lines


def machine_note() -> str:
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    note = f"{cpu}, {os.cpu_count()} cores, load average {load[0]:.1f} at start"
    if load[0] > 0.5 * (os.cpu_count() or 1):
        note += " (the machine was shared with other work: numbers are noisy)"
    return note


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per case")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="mlkube worker processes (default: one core left for wrk)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="renice the benchmark (servers and wrk alike) by this much, e.g. -5 (needs root)",
    )
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)
    wrk = ensure_wrk()
    mlserver = ensure_mlserver()
    ghz = ensure_ghz()
    note = machine_note() + (f", benchmark at nice {args.nice}" if args.nice else "")
    print(note, flush=True)
    with tempfile.TemporaryDirectory(prefix="mlkube-bench-") as tmp:
        workdir = Path(tmp)
        models = build_models(workdir)
        grpc_load = Grpc(ghz, write_protoset(workdir / "oip.protoset"))
        results = bench_mlserver(mlserver, models, wrk, args.duration, workdir, grpc_load)
        results += bench_floor(models, args.workers, wrk, args.duration, workdir)
        results += bench_floor_interleaved(models, args.workers, wrk, args.duration, workdir)
        results += bench_mlkube(models, args.workers, wrk, args.duration, workdir,
                                grpc_load=grpc_load)  # fmt: skip
        results += bench_mlkube(models, args.workers, wrk, args.duration, workdir,
                                "mlkube+batch", BATCH_ENV)  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(
        json.dumps({"machine": note, "results": [asdict(m) for m in results]}, indent=2)
    )
    print()
    print(
        f"MLServer 1.7.1 (defaults, debug off) vs mlkube ({args.workers} worker(s)), "
        f"wrk -t1, {args.duration:g}s per case; {note}"
    )
    print()
    print(table(results))
    print()
    print(f"The floor (echo_app.py, same uvicorn stack, {args.workers} worker(s)) and adaptive "
          f"batching (maxBatchSize {BATCH_ENV['MLKUBE_MAX_BATCH_SIZE']}, maxLatency "
          f"{BATCH_ENV['MLKUBE_MAX_BATCH_LATENCY_MS']} ms):")  # fmt: skip
    print()
    print(floor_table(results))
    print()
    print(f"{FLOOR_CASE}, floor and mlkube alternated (ABBA), both servers up:")
    print()
    print(interleaved_table(results))
    print()
    for line in floor_verdict(results):
        print(line)
    print()
    print("The Open Inference Protocol over gRPC (ghz, one connection per concurrent call):")
    print()
    print(table(results, GRPC_CASES))
    errors = sum(m.errors for m in results)
    if errors:
        print(f"\nwarning: {errors} failed requests (see wrk output above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
