"""`make bench-pipeline`: mlkube's PipelineRun controller against Argo Workflows'
workflow-controller, both run here on one control plane, with the same pipelines.

    python bench/pipeline/run.py [--sides argo,mlkube] [--chain 20] [--reps 3]
                                 [--cached-reps 3] [--json PATH]

One kube-apiserver + controller-manager + scheduler + kwok (mlkube.devcluster), Argo's
controller as a process (bench/pipeline/argo.py, built by hack/argo/build.sh), the mlkube
operator as a process (bench/pipeline/mlkube_side.py). Step pods of both are completed the
same way, by kubelet.StepCompleter (one status write once bound, plus what each system's
sidecar reports), so what differs is the controllers. Measured, alternating the systems
run by run because the machine is shared:
  per-step overhead  a chain of N container steps: pod of step k Succeeded (our status write
                     returned) → pod of step k+1 created (its watch event), p50 and p99 over
                     (N-1) x reps gaps; for mlkube this includes the Job controller's hops
                     (pod → Job Complete, Job → pod), a cost of one Job per step.
  DAG cold           a 50-step DAG (10 layers x 5, fan-in 2), every step run, create → Succeeded.
  DAG fully cached   the same DAG again (Argo: memoized with a ConfigMap cache, key = step name;
                     mlkube: its content-addressed cache), create → Succeeded, no pod created.
Prints a Markdown table with mlkube/Argo ratios, the Argo build time and the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import argo  # noqa: E402  (siblings of this script)
import shapes  # noqa: E402
from harness import Harness, Side, job_state, measure  # noqa: E402
from kubelet import StepCompleter  # noqa: E402
from kwatch import Recorder  # noqa: E402

from mlkube.devcluster import Cluster  # noqa: E402
from mlkube.devcluster.cluster import build_binaries  # noqa: E402
from mlkube.k8s import Kube  # noqa: E402


def median(values: list[float]) -> float:
    return shapes.percentile(values, 50)


ROWS = (
    ("per-step overhead p50 (ms)", lambda f: shapes.percentile(f.gaps_ms, 50), "{:.0f}"),
    ("per-step overhead p99 (ms)", lambda f: shapes.percentile(f.gaps_ms, 99), "{:.0f}"),
    ("controller's own part p50 (ms)", lambda f: shapes.percentile(f.own_gaps_ms, 50), "{:.0f}"),
    ("controller's own part p99 (ms)", lambda f: shapes.percentile(f.own_gaps_ms, 99), "{:.0f}"),
    ("run created → first pod, median (ms)", lambda f: median(f.first_ms), "{:.0f}"),
    ("chain of N, created → Succeeded, median (s)", lambda f: median(f.chain_s), "{:.2f}"),
    ("N-step DAG cold, created → Succeeded (s)", lambda f: median(f.dag_cold_s), "{:.2f}"),
    ("N-step DAG fully cached, median (s)", lambda f: median(f.dag_cached_s), "{:.2f}"),
    (
        "N-step DAG fully cached, best (s)",
        lambda f: min(f.dag_cached_s) if f.dag_cached_s else float("nan"),
        "{:.2f}",
    ),
)


def ratio(mine: float, peer: float) -> str:
    """mine / peer, with three decimals below 0.1 (10 ms against 10 s is not "0.00x")."""
    if not peer or math.isnan(peer) or math.isnan(mine):
        return "-"
    value = mine / peer
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def table(harnesses: list[Harness], steps: int) -> str:
    """One column per system, then mlkube's ratio to each other one (< 1: mlkube faster)."""
    ours = next((h for h in harnesses if h.side.name == "mlkube"), None)
    peers = [h for h in harnesses if h is not ours] if ours else []
    head = [
        "measurement",
        *(h.side.label for h in harnesses),
        *(f"mlkube / {h.side.label}" for h in peers),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for title, fn, fmt in ROWS:
        values = {h.side.name: fn(h.figures) for h in harnesses}
        cells = [
            title.replace("N-step", f"{steps}-step"),
            *(fmt.format(values[h.side.name]) for h in harnesses),
        ]
        for h in peers:
            assert ours is not None
            peer, mine = values[h.side.name], values[ours.side.name]
            cells.append(ratio(mine, peer))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sides",
        default="argo,argo-1s,mlkube",
        help="argo (upstream defaults), argo-<DEFAULT_REQUEUE_TIME>, mlkube",
    )
    parser.add_argument("--chain", type=int, default=20, help="steps in the chain")
    parser.add_argument("--reps", type=int, default=3, help="chains per system")
    parser.add_argument("--cached-reps", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=8, help="steps at once, both systems")
    parser.add_argument("--layers", type=int, default=10, help="DAG layers")
    parser.add_argument("--width", type=int, default=5, help="steps per DAG layer")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wanted = args.sides.split(",")
    dag = shapes.lattice(args.layers, args.width)
    load_before = os.getloadavg()
    bin_dir = build_binaries()
    _, argo_build_s = argo.build()
    with tempfile.TemporaryDirectory(prefix="mlkube-bench-pipeline-") as tmp:
        cluster = Cluster(Path(tmp) / "cluster", bin_dir, nodes=4)
        cluster.start()
        try:
            harnesses = start_sides(cluster, wanted, args.parallelism, Path(tmp))
            try:
                measure(harnesses, args.chain, args.reps, args.cached_reps, dag)
            finally:
                for h in harnesses:
                    h.recorder.__exit__()
                    h.completer.__exit__()
                    if h.jobs:
                        h.jobs.__exit__()
        finally:
            cluster.stop()
    load_after = os.getloadavg()
    print(
        f"\n## Pipeline controllers: chain of {args.chain} x {args.reps}, {len(dag)}-step DAG "
        f"({args.layers} layers x {args.width}), "
        f"cached x {args.cached_reps}\n"
    )
    print(table(harnesses, len(dag)))
    print(
        f"\nArgo build: {argo_build_s:.0f}s this run (cached builds take ~0s); load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, {os.cpu_count()} cores."
    )
    if args.json:
        doc = {h.side.name: asdict(h.figures) for h in harnesses}
        doc["meta"] = {
            "chain": args.chain,
            "reps": args.reps,
            "dagSteps": len(dag),
            "argoBuildSeconds": argo_build_s,
            "load": [load_before, load_after],
        }
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


def start_sides(cluster: Cluster, wanted: list[str], parallelism: int, tmp: Path) -> list[Harness]:
    kube = Kube(str(cluster.kubeconfig))
    harnesses = []
    for name in wanted:
        namespace = f"bench-{name}"
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        side: Side
        if name == "argo" or name.startswith("argo-"):
            side = argo.ArgoSide(namespace, parallelism, name.removeprefix("argo").strip("-"))
            argo.start(cluster, kube, argo.build()[0], namespace, side.env())
        elif name == "mlkube":
            import mlkube_side  # phase 2: the PipelineRun controller

            side = mlkube_side.start(cluster, kube, namespace, parallelism, tmp)
        else:
            raise SystemExit(f"unknown side {name!r} (argo, argo-<requeue time>, mlkube)")
        recorder = Recorder(kube, side.api_version, side.kind, namespace, side.phase).__enter__()
        completer = StepCompleter(kube, namespace).__enter__()
        jobs = None
        if name == "mlkube":
            jobs = Recorder(kube, "batch/v1", "Job", namespace, job_state).__enter__()
        harnesses.append(Harness(kube, side, recorder, completer, jobs))
    return harnesses


if __name__ == "__main__":
    sys.exit(main())
