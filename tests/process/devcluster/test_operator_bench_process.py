"""`make bench-operator`'s harness at a tiny size, for real: two fresh control planes (the
floor's, the operator's), the dev MinIO store ($MLKUBE_MINIO_BIN from hack/test), the operator
as a process. It guards the harness — every endpoint seen Ready, its first child and its Model's
verification timed, the operator's requests found in the audit log, the restart settled, every
router ConfigMap seen carrying the changed traffic, the table with the ratio to the floor —
not the numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "operator" / "run.py"
N = 3


def test_bench_operator_harness_measures_every_phase(tmp_path: Path) -> None:
    raw = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--n", str(N), "--resync", "20", "--idle", "2",
         "--json", str(raw)],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    ratio = next(line for line in done.stdout.splitlines() if line.startswith("| mlkube / floor"))
    assert ratio.rstrip(" |").endswith("x"), ratio  # a ratio, not "-"
    [f] = json.loads(raw.read_text())
    assert f["n"] == N
    assert f["floor_s"] > 0 and f["ready_s"] > 0 and f["floor_available_s"] >= f["floor_s"], f
    # Every endpoint: created → first child ≤ created → Ready; every Model verified.
    assert len(f["ready_ms"]) == len(f["children_ms"]) == len(f["model_ms"]) == N, f
    assert all(0 < c <= r for c, r in zip(f["children_ms"], f["ready_ms"], strict=True)), f
    # Per endpoint: create Model + status, create endpoint, 9+ children, endpoint status.
    assert f["floor_requests"] >= N * 13, f
    assert f["converge_requests"].get("patch onlineendpoints/status", 0) >= N, f
    assert f["restart_settle_s"] > 0 and sum(f["restart_requests"].values()) > 0, f
    assert len(f["traffic_ms"]) == N and f["traffic_s"] > 0, f
    assert f["peak_rss_mib"] > 50 and f["converge_cpu_s"] > 0 and f["idle_s"] == 2, f
