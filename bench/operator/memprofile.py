"""What holds the operator's memory per endpoint: the bench's workload against the operator
process with its memory probe on (MLKUBE_MEMORY_PROBE, handlers/memory_probe.py).

    python bench/operator/memprofile.py [--n 20,100] [--trace FRAMES] [--out DIR]
    python bench/operator/memprofile.py --diff DIR/n20-restarted-1.snap DIR/n100-restarted-1.snap
                                        --per 80 [--group lineno|filename|traceback]

Per N, one fresh cluster: the operator converges N endpoints (workload.py, as run.py), a dump
after it went quiet ("converged") and another after the restarted operator settled
("restarted"). With --trace (PYTHONTRACEMALLOC frames; 0: off, RSS figures then are the real
ones) each dump holds a tracemalloc snapshot; --diff prints the allocation sites that grew
between two snapshots, per endpoint with --per (the difference of the two N).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import audit_counts  # noqa: E402
import bringup  # noqa: E402  (siblings of this script)
import procstat  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import watchers  # noqa: E402

from mlkube.devcluster.audit import AuditLog  # noqa: E402

SUMMARY = ("rss", "traced", "kopf_memories", "threads", "malloc")


def dump(pid: int, prefix: Path, count: int, timeout: float = 120) -> dict[str, object]:
    """SIGUSR1 the operator and read its `count`-th report."""
    os.kill(pid, signal.SIGUSR1)
    path = Path(f"{prefix}-{count}.json")
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"no memory report at {path}")
        time.sleep(0.2)
    data: dict[str, object] = json.loads(path.read_text())
    return data


def show(label: str, data: dict[str, object]) -> None:
    mib = 1 << 20
    malloc = data.get("malloc") or {}
    pym = data.get("pymalloc") or {}
    assert isinstance(malloc, dict) and isinstance(pym, dict)
    print(f"{label}: rss {int(data['rss']) / mib:.1f} MiB"  # type: ignore[call-overload]
          f", traced {int(data.get('traced', 0)) / mib:.1f}"  # type: ignore[call-overload]
          f", malloc in use {malloc.get('in_use', 0) / mib:.1f}"
          f" free {malloc.get('free_kept', 0) / mib:.1f}"
          f" mmapped {malloc.get('mmapped', 0) / mib:.1f}"
          f", pymalloc {pym.get('total', 0) / mib:.1f} in use {pym.get('in_use', 0) / mib:.1f}"
          f", kopf memories {data.get('kopf_memories')}, threads {data.get('threads')}"
          f", tasks {sum(dict(data.get('tasks') or {}).values())}")  # type: ignore[call-overload]  # fmt: skip


def profile(n: int, out: Path, trace: int, settle: float, extra_env: dict[str, str]) -> None:
    cluster = bringup.start_cluster(out / f"cluster-{n}", n)
    try:
        kube = bringup.kube_for(cluster.kubeconfig, 16)
        bringup.prepare_namespace(kube, run.NS)
        env, uri, _ = bringup.store_and_artifact(cluster, kube, run.NS)
        probe_env = {"MLKUBE_MEMORY_PROBE": str(out / f"n{n}-converged"), **extra_env}
        if trace:
            probe_env["PYTHONTRACEMALLOC"] = str(trace)
        operator = bringup.Operator(cluster, kube, {**env, **probe_env})
        operator.start()
        run.wait_admission(kube)
        audit = AuditLog(cluster.audit_log)
        result = report.Result(n)
        with watchers.Watchers(bringup.kube_for(cluster.kubeconfig, 4), run.NS) as w:
            with procstat.Sampler(operator.pid) as rss:
                run.converge(kube, w, n, uri, result, 16)
                time.sleep(settle)
                show(f"N={n} converged (peak {rss.peak_mib:.0f} MiB, ready {result.ready_s:.1f}s)",
                     dump(operator.pid, out / f"n{n}-converged", 1))  # fmt: skip
            operator.stop()
            operator.env = {**env, **probe_env, "MLKUBE_MEMORY_PROBE": str(out / f"n{n}-restarted")}
            audit.mark()
            since = time.time()
            operator.start()
            with procstat.Sampler(operator.pid) as rss2:
                settled, _ = audit_counts.wait_settled(audit, since, run.QUIET, run.timeout_for(n))
                time.sleep(settle)
                show(f"N={n} restarted (peak {rss2.peak_mib:.0f} MiB, settled {settled})",
                     dump(operator.pid, out / f"n{n}-restarted", 1))  # fmt: skip
    finally:
        cluster.stop()


def diff(old: Path, new: Path, per: float, group: str, top: int) -> None:
    a = tracemalloc.Snapshot.load(str(old))
    b = tracemalloc.Snapshot.load(str(new))
    stats = b.compare_to(a, group)
    total = sum(s.size_diff for s in stats)
    print(f"total growth {total / (1 << 20):.1f} MiB, per unit {total / per / 1024:.1f} KiB")
    for s in stats[:top]:
        where = s.traceback.format()[-1].strip() if group != "traceback" else "\n    ".join(
            line.strip() for line in s.traceback.format(most_recent_first=True))  # fmt: skip
        size, count = s.size_diff / per / 1024, s.count_diff / per
        print(f"{size:8.1f} KiB/unit {count:8.1f} blocks/unit  {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="20,100")
    parser.add_argument("--trace", type=int, default=1, help="tracemalloc frames (0: off)")
    parser.add_argument("--settle", type=float, default=15.0, help="s of quiet before a dump")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--env", action="append", default=[], help="K=V for the operator")
    parser.add_argument("--diff", nargs=2, type=Path)
    parser.add_argument("--per", type=float, default=1.0)
    parser.add_argument("--group", default="lineno")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if args.diff:
        diff(args.diff[0], args.diff[1], args.per, args.group, args.top)
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="memprofile-"))
    out.mkdir(parents=True, exist_ok=True)
    for n in (int(v) for v in args.n.split(",")):
        extra = dict(v.split("=", 1) for v in args.env)
        profile(n, out, args.trace, args.settle, extra)
    print(f"reports and snapshots: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
