"""`make bench-batch`'s harness on tiny data: every case runs as real processes, the scorer's
merged output equals the floor's predictions, the table, the verdicts and the memory lines are
printed. Ray Data is left out by name (`--cases`): it needs its own venv and a minute to
install, which the full benchmark does; this test guards the harness, not the numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "batch" / "run.py"


def test_bench_harness_runs_every_case_on_tiny_data(tmp_path: Path) -> None:
    raw = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable, str(BENCH), "--rows", "3000", "--train-rows", "500",
            "--models", "lr", "--formats", "parquet,csv",
            "--cases", "floor,azure,mlkube1,mlkube2", "--memory-sizes", "150,600",
            "--json", str(raw),
        ],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "MLKUBE_BENCH_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for case in ("floor", "azure", "mlkube1", "mlkube2"):
        assert f"| parquet | lr | {case} |" in out and f"| csv | lr | {case} |" in out
    assert "parquet/lr: mlkube 1 process" in out and "parquet/lr: mlkube 2 processes" in out
    assert "mlkube1 150rows: peak RSS tree" in out and "mlkube1 600rows: peak RSS tree" in out
    results = json.loads(raw.read_text())
    scored = [r for r in results if r["case"] in ("mlkube1", "mlkube2")]
    assert len(scored) == 4
    for r in results:
        assert r["rows"] == 3000, r
        assert r["wall"] > 0 and r["peak_tree_mb"] > 0, r
    # The scorer's merged predictions agree with the floor, row for row, in input order.
    assert all(r["extra"]["mismatchesVsFloor"] == 0 for r in scored), scored
    # 3000 rows in 150-row row groups, 300-row mini-batches by default: ten parts were merged.
    assert {r["extra"]["miniBatches"] for r in scored} == {10}
    # The cache is keyed by the generator's parameters: a second run generates nothing.
    assert len(list((tmp_path / "cache").iterdir())) == 1
