"""`make bench-operator`: the operator at scale on the kwok dev cluster, against the API server's
floor (issue 15).

    python bench/operator/run.py [--n 100,300,1000] [--resync 120] [--idle S]
                                 [--concurrency 16] [--json PATH] [--keep]

For each N, two fresh clusters (bringup.py): one for the floor (floor.py), one for the operator
as a process. On the operator's, with watches running from before the first create
(watchers.py) and the operator's requests counted in the API server's audit log (audit_counts.py):
  converge   N Models + N OnlineEndpoints (workload.py) created at once; until every endpoint
             is Ready for its generation: per endpoint created → first child Deployment and
             created → Ready (watch arrival times), peak RSS and CPU (procstat.py), requests.
  restart    the operator stopped and started with everything in place: seconds from its start
             to its last request before QUIET s without one, its requests and writes (target: 0).
  traffic    every endpoint's traffic (every tenth's mirror) patched at once: until every router
             ConfigMap carries its new routing; CPU and requests until the operator is quiet.
  idle       after the traffic change settled, IDLE s (default: RESYNC) of nothing; the
             restarted operator runs with MLKUBE_RESYNC_SECONDS=RESYNC, so the window holds one
             resync of every endpoint: CPU, requests and writes (target: 0 writes).
Prints the table per N, the growth per endpoint, the requests by verb and resource.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import audit_counts  # noqa: E402
import bringup  # noqa: E402  (siblings of this script)
import floor  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402
import watchers  # noqa: E402
import workload  # noqa: E402

from mlkube.builders.operator_config import parse_operator_config  # noqa: E402
from mlkube.devcluster.audit import AuditLog  # noqa: E402
from mlkube.devcluster.cluster import OPERATOR_USER  # noqa: E402
from mlkube.k8s import ApiError, Kube  # noqa: E402

NS = workload.NAMESPACE
QUIET = 5.0  # seconds without an operator request: settled


def timeout_for(n: int) -> float:
    return 120 + n * 1.0  # generous: a slow run is measured, not aborted


def wait_admission(kube: Kube, deadline: float = 60) -> None:
    """Until the operator's webhooks answer (a dry-run create passes them)."""
    end = time.monotonic() + deadline
    probe = workload.endpoint(0)
    probe["metadata"]["name"] = "admission-probe"  # dry run: never stored
    path = kube.path(probe["apiVersion"], probe["kind"], NS)
    while True:
        try:
            kube.request("POST", path, body=probe, query=[("dryRun", "All")])
            return
        except ApiError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def run_floor(n: int, tmp: Path, concurrency: int, result: report.Result) -> None:
    cluster = bringup.start_cluster(tmp / f"floor-{n}", n)
    try:
        kube = bringup.kube_for(cluster.kubeconfig, concurrency)
        bringup.prepare_namespace(kube, NS)
        env, uri, facts = bringup.store_and_artifact(cluster, kube, NS)
        config = parse_operator_config({**os.environ, **env})
        with watchers.Recorder(kube, "apps/v1", "Deployment", NS,
                               watchers.deployment_available) as deps:  # fmt: skip
            started = time.monotonic()
            result.floor_s, result.floor_requests = floor.run(
                kube, n, uri, facts, config, NS, concurrency
            )
            want = n * 3  # blue, green, router
            done = watchers.wait_until(deps, lambda: sum(
                "Available" in s for s in deps.seen.values()) >= want,
                timeout_for(n), "floor Deployments available")  # fmt: skip
            result.floor_available_s = done - started
    finally:
        cluster.stop()


def converge(kube: Kube, w: watchers.Watchers, n: int, uri: str, result: report.Result,
             concurrency: int) -> None:  # fmt: skip
    objects = [o for i in range(n) for o in (workload.model(i, uri), workload.endpoint(i))]
    names = [workload.endpoint_name(i) for i in range(n)]
    started = time.monotonic()
    workload.create_all(kube, objects, concurrency)
    eps = w.endpoints
    done = watchers.wait_until(eps, lambda: len(watchers.ready_times(eps, names)) == n,
                               timeout_for(n), "every endpoint Ready")  # fmt: skip
    result.ready_s = done - started
    ready = watchers.ready_times(eps, names)
    first = w.first_child()
    with eps.cond:
        created = {e: eps.seen[e]["Created"] for e in names if "Created" in eps.seen.get(e, {})}
    result.ready_ms = [(ready[e] - created.get(e, started)) * 1000 for e in names]
    result.children_ms = [(first[e] - created.get(e, started)) * 1000 for e in names if e in first]
    models = w.models
    with models.cond:
        result.model_ms = [(t["Ready"] - t.get("Created", started)) * 1000
                           for t in models.seen.values() if "Ready" in t]  # fmt: skip


def traffic(kube: Kube, w: watchers.Watchers, n: int, result: report.Result,
            concurrency: int) -> None:  # fmt: skip
    names = [workload.endpoint_name(i) for i in range(n)]

    def want(ep: str) -> str:
        return watchers.routing_key(workload.routing(workload.index_of(ep), changed=True))

    started = time.monotonic()
    workload.patch_traffic(kube, n, concurrency)
    done = watchers.wait_until(w.configmaps, lambda: len(w.routed(names, want)) == n,
                               timeout_for(n), "every router ConfigMap routed")  # fmt: skip
    result.traffic_s = done - started
    result.traffic_ms = [(t - started) * 1000 for t in w.routed(names, want).values()]


def run_mlkube(n: int, tmp: Path, args: argparse.Namespace, result: report.Result) -> None:
    cluster = bringup.start_cluster(tmp / f"mlkube-{n}", n)
    try:
        kube = bringup.kube_for(cluster.kubeconfig, args.concurrency)
        bringup.prepare_namespace(kube, NS)
        env, uri, _ = bringup.store_and_artifact(cluster, kube, NS)
        operator = bringup.Operator(cluster, kube, env)  # converges at the default resync
        operator.start()
        wait_admission(kube)
        audit = AuditLog(cluster.audit_log)
        watch_kube = bringup.kube_for(cluster.kubeconfig, 4)
        with watchers.Watchers(watch_kube, NS) as w:
            audit.mark()
            cpu = procstat.cpu_seconds(operator.pid)
            with procstat.Sampler(operator.pid) as rss:
                converge(kube, w, n, uri, result, args.concurrency)
            result.converge_cpu_s = procstat.cpu_seconds(operator.pid) - cpu
            result.converge_requests = audit_counts.summary(audit.since_mark(OPERATOR_USER))
            print(f"N={n}: all Ready in {result.ready_s:.1f}s", file=sys.stderr)

            operator.stop()
            # The restarted process resyncs every --resync s: the idle window (as long) holds
            # one resync of every endpoint.
            operator.env = {**env, "MLKUBE_RESYNC_SECONDS": str(args.resync)}
            audit.mark()
            since = time.time()
            operator.start()
            with procstat.Sampler(operator.pid) as rss2:
                settle, seen = audit_counts.wait_settled(audit, since, QUIET, timeout_for(n))
                result.restart_settle_s = float("nan") if settle is None else settle
                result.restart_requests = audit_counts.summary(seen)
                result.restart_writes = audit_counts.describe_writes(seen)
                print(f"N={n}: restart settled after {settle}", file=sys.stderr)
                wait_admission(kube)
                audit.mark()
                cpu, traffic_since = procstat.cpu_seconds(operator.pid), time.time()
                traffic(kube, w, n, result, args.concurrency)
                print(f"N={n}: traffic on every router in {result.traffic_s:.1f}s",
                      file=sys.stderr)  # fmt: skip
                # Until the operator is quiet again: the whole cost of the change (CPU
                # includes the QUIET s without a request at the end).
                _, seen = audit_counts.wait_settled(audit, traffic_since, QUIET, timeout_for(n))
                result.traffic_cpu_s = procstat.cpu_seconds(operator.pid) - cpu
                result.traffic_requests = audit_counts.summary(seen)
                audit.mark()
                cpu = procstat.cpu_seconds(operator.pid)
                idle_s = args.idle or args.resync
                time.sleep(idle_s)
                result.idle_s = idle_s
                result.idle_cpu_s = procstat.cpu_seconds(operator.pid) - cpu
                idle = audit.since_mark(OPERATOR_USER)
                result.idle_requests = audit_counts.summary(idle)
                result.idle_writes = audit_counts.describe_writes(idle)
            result.peak_rss_mib, result.restart_rss_mib = rss.peak_mib, rss2.peak_mib
        if not operator.alive():
            raise RuntimeError("the operator died; log: " + str(cluster.logs / "operator.log"))
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_n = os.environ.get("BENCH_OPERATOR_N", "100,300,1000")
    parser.add_argument("--n", default=default_n, help="endpoint counts, comma-separated")
    parser.add_argument("--resync", type=float, default=120.0,
                        help="MLKUBE_RESYNC_SECONDS of the restarted operator (s)")  # fmt: skip
    parser.add_argument("--idle", type=float, default=0.0, help="idle window (s; 0: --resync)")
    parser.add_argument("--concurrency", type=int, default=16, help="client requests in flight")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the clusters' workdirs")
    args = parser.parse_args()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    for n in (int(v) for v in args.n.split(",")):
        result = report.Result(n)
        run_floor(n, tmp, args.concurrency, result)
        print(f"N={n}: floor {result.floor_s:.1f}s", file=sys.stderr)
        run_mlkube(n, tmp, args, result)
        result.load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        results.append(result)
    print(report.table(results))
    print()
    print(report.growth(results))
    for phase in ("converge", "restart", "traffic", "idle"):
        print()
        print(report.requests_table(results, phase))
    for r in results:
        for phase, writes in (("restart", r.restart_writes), ("idle", r.idle_writes)):
            if writes:
                more = f"\n  ... {len(writes) - 20} more" if len(writes) > 20 else ""
                print(f"\nN={r.n} {phase} writes:\n  " + "\n  ".join(writes[:20]) + more)
    print(f"\nload average after each N: {', '.join(f'N={r.n}: {r.load}' for r in results)}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    if args.keep:
        print(f"workdirs (clusters' logs, audit logs): {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
