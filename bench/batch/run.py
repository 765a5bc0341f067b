"""Benchmark mlkube's batch scorer against the floor, Ray Data and an Azure-style loop.

    python bench/batch/run.py [--quick] [--rows N] [--models rf,lr] [--formats parquet,csv]
                              [--cases floor,ray,azure,mlkube1,mlkube2] [--json PATH]

One run scores the same input (bench/batch/data.py: 1,000,000 rows x 20 features, CSV and
Parquet, cached) with the same models, every case a real process tree:
  floor    one process: pyarrow reads, one-thread onnxruntime in 100,000-row chunks, pyarrow
           CSV writer (bench/batch/peers.py)
  ray      Ray Data map_batches over the same ONNX model, num_cpus = the machine's cores,
           installed into its own venv (~/.cache/mlkube/bench-batch/peers-venv, once)
  azure    init()/run(mini_batch) with pandas DataFrames and scikit-learn, appended with pandas
  mlkube1  `python -m mlkube_serving batch plan`, `score --concurrency 1`, `merge` (CSV output)
  mlkube2  the same with `score --concurrency 2`
  mlkube1onnx  mlkube1 with the model registered as ONNX (the floor's file): no conversion
Wall time is the whole process tree (interpreters, imports, model loads, writes; mlkube: all
three steps). Peak RSS is sampled every 50 ms as the sum over the process tree (/proc), plus
the largest single process. Then mlkube1 again over Parquet at two mini-batch sizes shows
peak memory follows the mini-batch, not the input. Prints a Markdown table with ratios to the
floor and whether each target holds; the load average is printed because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data as bench_data  # noqa: E402  (a sibling module of this script)

PEERS = HERE / "peers.py"
# The same versions as mlkube's venv, so both sides run the same onnxruntime and readers.
RAY_REQUIREMENTS = ["ray[data]==2.60.0"] + [
    f"{name}=={version(name)}" for name in ("onnxruntime", "pandas", "pyarrow", "numpy")
]
ALL_CASES = ("floor", "ray", "azure", "mlkube1", "mlkube2", "mlkube1onnx")


@dataclass
class Measured:
    case: str
    fmt: str
    model: str
    rows: int = 0
    wall: float = 0.0
    inner: float | None = None  # seconds inside the process (peers) or of the score step
    peak_tree_mb: float = 0.0
    peak_process_mb: float = 0.0
    load: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.wall if self.wall else 0.0


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def tree_rss(root: int) -> tuple[int, int]:
    """(sum, max) of resident kB over `root` and its descendants, found through the kernel's
    per-task `children` lists (a few reads per sample, not a scan of all of /proc)."""
    total, largest, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                kb = int(handle.read().split()[1]) * PAGE_KB
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    todo.extend(int(c) for c in handle.read().split())
        except (OSError, ValueError):
            continue  # exited between two reads
        total += kb
        largest = max(largest, kb)
    return total, largest


def run_sampled(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> tuple[str, float, int, int]:
    """Run `cmd`, sampling its process tree's RSS; (stdout, seconds, peak sum kB, peak max kB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    peaks = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total, largest = tree_rss(process.pid)
            peaks[0], peaks[1] = max(peaks[0], total), max(peaks[1], largest)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the case's whole tree
        process.communicate()
        raise RuntimeError(f"{' '.join(cmd[:4])} ... did not finish in {timeout:g} s") from None
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {process.returncode}:\n{err[-3000:]}")
    return out, seconds, peaks[0], peaks[1]


def ensure_ray_venv() -> tuple[Path | None, str]:
    """The peers venv with Ray Data; (python, "") or (None, why it cannot be used)."""
    venv = bench_data.CACHE / "peers-venv"
    marker = venv / "mlkube-requirements.txt"
    wanted = "\n".join(RAY_REQUIREMENTS)
    python = venv / "bin" / "python"
    if not (marker.exists() and marker.read_text() == wanted):
        print(f"installing {', '.join(RAY_REQUIREMENTS)} into {venv} (once) ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *RAY_REQUIREMENTS],
                check=True,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as exc:
            return None, f"pip could not install Ray Data: {(exc.stderr or '')[-500:]}"
        marker.write_text(wanted)
    return python, ""


def peer(case: str, python: str, ds: bench_data.Dataset, fmt: str, model: str, out: Path,
         mini_batch: int, cpus: int) -> Measured:  # fmt: skip
    model_file = ds.onnx(model) if case != "azure" else ds.model_dir(model) / "model.joblib"
    cmd = [python, str(PEERS), case, "--input", str(ds.input(fmt)), "--format", fmt,
           "--model", str(model_file), "--output", str(out), "--cpus", str(cpus),
           "--mini-batch", str(mini_batch)]  # fmt: skip
    load = os.getloadavg()[0]
    stdout, wall, tree, largest = run_sampled(cmd)
    body = json.loads(stdout.strip().splitlines()[-1])
    m = Measured(case, fmt, model, body["rows"], wall, body["seconds"], tree / 1024,
                 largest / 1024, load)  # fmt: skip
    if case == "ray":
        sockets = body["sockets"]
        m.extra = {"initSeconds": body["initSeconds"], "sockets": sockets}
        m.note = f"init {body['initSeconds']:.1f} s; listens on {','.join(sockets['listen'])}"
        if sockets["offMachine"]:
            raise RuntimeError(f"Ray used non-loopback addresses: {sockets['detail']} "
                               f"(listening: {sockets['listen']})")  # fmt: skip
    return m


def mlkube(workers: int, ds: bench_data.Dataset, fmt: str, model: str, out: Path,
           mini_batch: int, case: str = "", onnx: bool = False) -> Measured:  # fmt: skip
    base = [sys.executable, "-m", "mlkube_serving", "batch", "--termination-log", ""]
    env = {**os.environ, "MLKUBE_LOG_LEVEL": "WARNING"}
    steps = [
        [*base, "plan", "--input", f"file://{ds.input(fmt)}", "--output", f"file://{out}",
         "--mini-batch-size", f"{mini_batch}rows"],
        [*base, "score", "--output", f"file://{out}", "--model",
         str(ds.onnx(model) if onnx else ds.model_dir(model)),
         "--concurrency", str(workers), "--timeout", "600", "--index", "0", "--indexes", "1"],
        [*base, "merge", "--output", f"file://{out}"],
    ]  # fmt: skip
    load = os.getloadavg()[0]
    walls, tree, largest, summaries = [], 0, 0, []
    for step in steps:
        stdout, wall, t, big = run_sampled(step, env)
        walls.append(wall)
        tree, largest = max(tree, t), max(largest, big)
        lines = stdout.strip().splitlines()  # `score` prints no summary (its progress files do)
        summaries.append(json.loads(lines[-1]) if lines else {})
    rows = summaries[2]["items"]["succeeded"] if "items" in summaries[2] else 0
    if summaries[2].get("items", {}).get("failed"):
        raise RuntimeError(f"mlkube failed items: {summaries[2]}")
    m = Measured(case or f"mlkube{workers}", fmt, model, rows, sum(walls), walls[1],
                 tree / 1024, largest / 1024, load)  # fmt: skip
    m.note = f"plan {walls[0]:.1f} + score {walls[1]:.1f} + merge {walls[2]:.1f} s"
    m.extra = {"steps": walls, "miniBatches": summaries[0]["miniBatches"]}
    return m


def keep_best(old: Measured | None, new: Measured) -> Measured:
    """The faster run (a shared machine only ever adds time); peak memory is the larger."""
    if old is None:
        new.extra["walls"] = [round(new.wall, 3)]
        return new
    walls = [*old.extra.get("walls", []), round(new.wall, 3)]
    kept = new if new.wall < old.wall else old
    kept.peak_tree_mb = max(old.peak_tree_mb, new.peak_tree_mb)
    kept.peak_process_mb = max(old.peak_process_mb, new.peak_process_mb)
    kept.extra["walls"] = walls
    return kept


def mismatches(a: Path, b: Path) -> int:
    """Rows whose prediction differs between two single-column CSV files (same order)."""
    import pyarrow.csv as pacsv

    x = pacsv.read_csv(a).column("prediction").to_numpy()
    y = pacsv.read_csv(b).column("prediction").to_numpy()
    if len(x) != len(y):
        return max(len(x), len(y))
    return int((x != y).sum())


def table(results: list[Measured]) -> str:
    floors = {(m.fmt, m.model): m for m in results if m.case == "floor"}
    lines = [
        "| format | model | case | wall s | rows/s | x floor | peak RSS tree / largest MB "
        "| load | notes |",
        "|---|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for m in results:
        base = floors.get((m.fmt, m.model))
        ratio = f"{base.wall / m.wall:.2f}" if base and m.wall else "-"
        wall = f"{m.wall:.2f}" if m.wall else "-"
        rate = f"{m.rate:,.0f}" if m.wall else "-"
        mem = f"{m.peak_tree_mb:,.0f} / {m.peak_process_mb:,.0f}" if m.wall else "-"
        walls = m.extra.get("walls", [])
        runs = ", ".join(f"{w:.2f}" for w in walls)
        note = "; ".join(x for x in (m.note, f"runs {runs} s" if len(walls) > 1 else "") if x)
        lines.append(f"| {m.fmt} | {m.model} | {m.case} | {wall} | {rate} | {ratio} | {mem} | "
                     f"{m.load:.1f} | {note} |")  # fmt: skip
    return "\n".join(lines)


def verdicts(results: list[Measured]) -> list[str]:
    by = {(m.fmt, m.model, m.case): m for m in results if m.wall}
    out = []
    for fmt, model in sorted({(m.fmt, m.model) for m in results}):
        floor, one, two, ray = (
            by.get((fmt, model, c)) for c in ("floor", "mlkube1", "mlkube2", "ray")
        )
        label = f"{fmt}/{model}"
        if floor and one:
            r = floor.wall / one.wall
            out.append(f"{label}: mlkube 1 process {r:.2f}x floor (target >= 0.8): "
                       f"{'HOLDS' if r >= 0.8 else 'MISSED'}")  # fmt: skip
        if floor and two:
            r, s = floor.wall / two.wall, (one.wall / two.wall if one else 0.0)
            out.append(f"{label}: mlkube 2 processes {r:.2f}x floor, {s:.2f}x mlkube 1 "
                       f"(target >= 1.7x floor): {'HOLDS' if r >= 1.7 else 'MISSED'}")  # fmt: skip
        onnx = by.get((fmt, model, "mlkube1onnx"))
        if floor and onnx:
            r = floor.wall / onnx.wall
            out.append(f"{label}: mlkube 1 process, model registered as ONNX, {r:.2f}x floor "
                       f"(target >= 0.8): {'HOLDS' if r >= 0.8 else 'MISSED'}")  # fmt: skip
        if ray and (two or one):
            best = min(x.wall for x in (one, two) if x)
            out.append(f"{label}: mlkube {ray.wall / best:.2f}x Ray Data (target: ahead): "
                       f"{'HOLDS' if best < ray.wall else 'MISSED'}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, logistic regression")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--models")
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--cases", default=",".join(ALL_CASES))
    parser.add_argument("--mini-batch", type=int, help="rows per mini-batch (default rows/10)")
    parser.add_argument("--memory-sizes", help="two mini-batch sizes for the memory runs")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every case N times, keep each one's fastest"
    )
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    models = (args.models or ("lr" if args.quick else "rf,lr")).split(",")
    formats, cases = args.formats.split(","), args.cases.split(",")
    group = max(1, min(50_000, rows // 20))
    mini = args.mini_batch or max(group, rows // 10)
    sizes = [int(s) for s in (args.memory_sizes or f"{group},{4 * group}").split(",")]
    cpus = os.cpu_count() or 2
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# batch benchmark: {rows:,} rows x 20, {platform.node()}, {cpus} cores, "
          f"load average {load}", flush=True)  # fmt: skip
    ds = bench_data.ensure(bench_data.Params(rows=rows, row_group=group,
                                             train_rows=min(args.train_rows, rows)))  # fmt: skip
    ray_python, ray_why = (None, "")
    if "ray" in cases:
        ray_python, ray_why = ensure_ray_venv()
        if ray_python is None:
            print(f"RAY DATA NOT RUN: {ray_why}", flush=True)
    best: dict[tuple[str, str, str], Measured] = {}
    order = {
        k: i for i, k in enumerate((f, m, c) for f in formats for m in models for c in cases)
    }.__getitem__
    scratch = Path(tempfile.mkdtemp(prefix="mlkube-bench-batch-"))

    def one_case(case: str, fmt: str, model: str, base: Path) -> Measured | None:
        out = Path(f"{base}-{case}")
        out.mkdir()
        if case == "ray" and ray_python is None:
            best[(fmt, model, case)] = Measured(case, fmt, model, note=f"NOT RUN: {ray_why}")
            return None
        if case.startswith("mlkube"):
            m = mlkube(int(case[6]), ds, fmt, model, out, mini, case, case.endswith("onnx"))
        else:
            python = str(ray_python) if case == "ray" else sys.executable
            m = peer(case, python, ds, fmt, model, out, mini, cpus)
        if case.startswith("mlkube") and "floor" in cases:
            wrong = mismatches(out / "predictions.csv", Path(f"{base}-floor") / "predictions.csv")
            m.extra["mismatchesVsFloor"] = wrong
            m.note += f"; {wrong} rows differ from the floor"
        if m.rows != rows:
            raise RuntimeError(f"{case} {fmt}/{model} scored {m.rows} of {rows} rows")
        print(
            f"  {fmt}/{model} {case}: {m.wall:.2f} s, {m.rate:,.0f} rows/s, "
            f"peak {m.peak_tree_mb:,.0f} MB (load {m.load:.1f})",
            flush=True,
        )
        if case != "floor":
            shutil.rmtree(out, ignore_errors=True)
        return m

    try:
        for round_ in range(args.rounds):
            for fmt in formats:
                for model in models:
                    for case in cases:
                        m = one_case(case, fmt, model, scratch / f"r{round_}-{fmt}-{model}")
                        if m is not None:
                            best[(fmt, model, case)] = keep_best(best.get((fmt, model, case)), m)
        results = [best[k] for k in sorted(best, key=order)]
        memory = []
        if "mlkube1" in cases:
            for size in sizes:
                out = scratch / f"memory-{size}"
                out.mkdir()
                memory.append(
                    mlkube(1, ds, "parquet", models[-1], out, size, f"mlkube1 {size}rows")
                )
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(table(results))
    print()
    for line in verdicts(results):
        print(line)
    if memory:
        in_memory = rows * 20 * 8 / 2**20
        print()
        on_disk = ds.parquet.stat().st_size / 2**20
        print(
            f"peak memory vs mini-batch size (Parquet, {models[-1]}, 1 worker; the input is "
            f"{on_disk:,.0f} MB on disk, {in_memory:,.0f} MB as float64):"
        )
        for m in memory:
            print(f"  {m.case}: peak RSS tree {m.peak_tree_mb:,.0f} MB, largest process "
                  f"{m.peak_process_mb:,.0f} MB, wall {m.wall:.2f} s")  # fmt: skip
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        body = [m.__dict__ for m in results + memory]
        Path(args.json).write_text(json.dumps(body, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
