"""`make bench-pipeline`'s harness at a tiny size, both systems for real: a control plane, Argo's
workflow-controller (hack/argo, $MLKUBE_ARGO_BIN from hack/test) and the mlkube operator as
processes; chains, a cold DAG and a fully cached rerun on each, the table with mlkube's ratio.
It guards the harness (every run Succeeded, every step's pod created and completed by the
stand-in kubelet, the rerun served from each system's cache with no pod), not the numbers.
Argo runs with DEFAULT_REQUEUE_TIME=1s only: its 10 s default would make this a minute longer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "pipeline" / "run.py"


def test_bench_pipeline_harness_measures_both_systems(tmp_path: Path) -> None:
    raw = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable, str(BENCH), "--sides", "argo-1s,mlkube", "--chain", "3",
            "--reps", "1", "--cached-reps", "1", "--layers", "2", "--width", "3",
            "--json", str(raw),
        ],
        capture_output=True, text=True, timeout=500, check=False, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    out = done.stdout
    assert "| mlkube / Argo v4.0.5 (requeue 1s) |" in out, out
    for row in ("per-step overhead p50 (ms)", "6-step DAG fully cached, median (s)"):
        line = next(line for line in out.splitlines() if line.startswith(f"| {row} |"))
        assert line.rstrip(" |").endswith("x"), line  # a ratio, not "-"
    figures = json.loads(raw.read_text())
    for side in ("argo-1s", "mlkube"):
        f = figures[side]
        assert len(f["gaps_ms"]) == 2 and len(f["own_gaps_ms"]) == 2, f
        assert all(0 < g < 60_000 for g in f["gaps_ms"]), f
        assert len(f["dag_cold_s"]) == 1 and len(f["dag_cached_s"]) == 1, f
    # mlkube's own share excludes the Job controller's hops: never more than the whole gap.
    mine = figures["mlkube"]
    assert all(o <= g for o, g in zip(mine["own_gaps_ms"], mine["gaps_ms"], strict=True))
    assert figures["meta"]["dagSteps"] == 6
