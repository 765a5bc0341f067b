"""`make bench-rollout`: time from a metric breach to live traffic off the rollout candidate.

    python bench/rollout/breach.py [--intervals 2,5,10] [--reps 3] [--json PATH]

The issue's target: breach -> traffic off the candidate <= one analysis interval + 2 s. Set up
as the integration tests do (tests/support/local_routers.py): one real control plane (kube-
apiserver, controller-manager, kwok), the real operator (in-process, as `mlkube operator`
runs it), two REAL router processes on loopback addresses playing the endpoint's router pods,
in front of stand-in model servers for blue (stable) and green (candidate). The "kubelet"
refreshes the routers' config file only every 60 s, as a real one may: a new split reaches the
routers by the operator's signed push (docs/rollouts.md §6). A client sends ~100 requests/s
through the routers the whole time.

Each repetition starts a rollout (a changed spec: new revision) whose candidate gets 20 % and
then waits in a long pause, with a background error-rate analysis (`count: 0`, failure when
result > 0.05, every `interval`). Once the analysis has passed at least one measurement, green
turns bad at a random moment of its window (its server answers 500 from then on): that is the
breach. Measured: breach -> the last request green's server answered (traffic off); and the
parts: breach -> the failing measurement (`status.rollout`), measurement -> traffic off.
Prints a Markdown table per interval (median and max over the repetitions) and the target.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from kopf.testing import KopfRunner  # noqa: E402

from mlkube.api.endpoint import OnlineEndpointSpec  # noqa: E402
from mlkube.builders.endpoint_router import build_router_deployment  # noqa: E402
from mlkube.builders.names import EndpointRef, deployment_name, service_host  # noqa: E402
from mlkube.builders.operator_config import parse_operator_config  # noqa: E402
from mlkube.contract import API_VERSION  # noqa: E402
from mlkube.devcluster import Cluster  # noqa: E402
from mlkube.devcluster.cluster import build_binaries  # noqa: E402
from mlkube.handlers.config import operator_config  # noqa: E402
from mlkube.k8s import Kube  # noqa: E402
from mlkube.k8s.crds import apply_crds  # noqa: E402
from support.endpoints import create_ready_models, endpoint_object  # noqa: E402
from support.local_routers import (  # noqa: E402
    KWOK_HANDS_OFF,
    LocalRouters,
    local_routers,
    loopback_ips,
    stand_in_servers,
)
from support.waiting import wait_for  # noqa: E402

EP = "credit"
BASE: dict[str, Any] = {
    "deployments": [
        {"name": "blue", "model": "credit-risk-v3", "replicas": 1},
        {"name": "green", "model": "credit-risk-v4", "replicas": 1},
    ],
    "traffic": {"blue": 100},
}


def plan(interval: float, rep: int) -> dict[str, Any]:
    """20 % to green, then a long pause; errors measured in the background until the end."""
    return {
        "stable": "blue", "candidate": "green",
        "steps": [{"setWeight": 20}, {"pause": {"duration": "1h"}}],
        "backgroundAnalysis": {"metrics": ["errors"], "startingStep": 0},
        "abortScaleDownDelay": f"{600 + rep}s",  # long (green keeps its pods); new revision
        "metrics": [{
            "name": "errors", "interval": f"{interval:g}s", "count": 0,
            "successCondition": "result <= 0.05", "failureCondition": "result > 0.05",
            "minSampleCount": 5, "provider": {"builtin": {"type": "errorRate"}},
        }],
    }  # fmt: skip


class Client:
    """Threads posting to the routers (round robin) until stopped; ~100 requests/s."""

    def __init__(self, urls: list[str], threads: int = 4) -> None:
        self.urls = urls
        self.stop = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(threads)]

    def loop(self) -> None:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64",
                                       "data": [1.0]}]}).encode()  # fmt: skip
        index = random.randrange(len(self.urls))
        while not self.stop.is_set():
            url = self.urls[index % len(self.urls)] + "/v2/models/credit-risk/infer"
            index += 1
            request = urllib.request.Request(url, body, {"content-type": "application/json"})
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=5).close()
            self.sent += 1
            self.stop.wait(0.04)

    def __enter__(self) -> Client:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def rollout(kube: Kube, namespace: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {}
    return dict((obj.get("status") or {}).get("rollout") or {})


def parse(at: str) -> float:
    return datetime.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def environment(kube: Kube, namespace: str, work: Path) -> Iterator[tuple[LocalRouters, Any]]:
    """The operator, the stand-in servers and two routers serving blue at 100 %."""
    config = parse_operator_config(os.environ)
    with contextlib.ExitStack() as stack:
        servers = stack.enter_context(stand_in_servers(work, {"blue": "ok", "green": "ok"}))
        upstreams = {
            service_host(deployment_name(EP, name), namespace, config.cluster_domain): s.port
            for name, s in servers.items()
        }
        args = ["run", "-m", "mlkube.handlers.main", "--standalone", "--namespace", namespace]
        runner = stack.enter_context(KopfRunner(args, timeout=60))
        create_ready_models(kube, namespace, work)
        waiting = copy.deepcopy(BASE)
        waiting["deployments"][0]["model"] = "not-registered"
        created = kube.create(endpoint_object(EP, namespace, waiting))
        owner = EndpointRef(EP, namespace, created["metadata"]["uid"])
        router = build_router_deployment(owner, OnlineEndpointSpec.model_validate(BASE), config)
        router["spec"]["template"]["metadata"]["annotations"].update(KWOK_HANDS_OFF)
        kube.create(router)
        kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": BASE}, namespace)
        ips = loopback_ips(2, uuid.uuid4().int)
        routers = LocalRouters(kube, namespace, EP, ips, work / "routers", upstreams,
                               sync_seconds=60.0)  # fmt: skip
        stack.enter_context(local_routers(routers))
        wait_for(lambda: len(routers.pods) == 2, timeout=60, interval=0.1, what="two routers")
        yield routers, servers
        del runner


def one_rep(
    kube: Kube, namespace: str, routers: LocalRouters, servers: Any, interval: float, rep: int
) -> dict[str, float]:
    green = servers["green"]
    green.set_mode("ok")
    kube.patch(API_VERSION, "OnlineEndpoint", EP,
               {"spec": {"traffic": {"blue": None, "green": 100}, "rollout": plan(interval, rep)}},
               namespace)  # fmt: skip
    started = rollout(kube, namespace).get("startedAt")

    def measured_ok() -> dict[str, Any] | None:
        state = rollout(kube, namespace)
        if state.get("phase") != "Progressing" or state.get("startedAt") == started:
            return None
        metrics = [m for m in state.get("metrics") or [] if m["name"] == "errors"]
        ok = metrics and any(x["phase"] == "Successful" for x in metrics[0]["measurements"])
        return state if ok else None

    wait_for(measured_ok, timeout=120, interval=0.1, what="a first passed measurement")
    time.sleep(random.uniform(0, interval))  # a random moment of the measurement window
    breach = time.time()
    green.set_mode("fail")
    aborted = wait_for(lambda: (s := rollout(kube, namespace)).get("phase") == "Aborted" and s,
                       timeout=interval * 4 + 30, interval=0.05, what="Aborted")  # fmt: skip
    time.sleep(2.0)  # the client keeps sending: anything still reaching green counts
    routers.check()
    answered = [t for t, _ in green.answered() if t >= breach]
    failing = next(m for m in aborted["metrics"] if m["name"] == "errors")["measurements"][-1]
    off = max(answered) if answered else breach
    return {
        "breach_to_off": off - breach,
        "breach_to_measurement": parse(failing["at"]) - breach,
        "measurement_to_off": off - parse(failing["at"]),
    }


def table(results: dict[float, list[dict[str, float]]]) -> str:
    rows = ["| interval | target (interval + 2 s) | breach → traffic off, median (max) | "
            "breach → failing measurement | measurement → traffic off | reps |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for interval, reps in sorted(results.items()):

        def cell(key: str, reps: list[dict[str, float]] = reps) -> str:
            values = [r[key] for r in reps]
            return f"{statistics.median(values):.2f} s ({max(values):.2f} s)"

        rows.append(f"| {interval:g} s | {interval + 2:g} s | {cell('breach_to_off')} | "
                    f"{cell('breach_to_measurement')} | {cell('measurement_to_off')} | "
                    f"{len(reps)} |")  # fmt: skip
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="2,5,10")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mlkube-bench-rollout-"))
    bin_dir = os.environ.get("MLKUBE_CONTROLPLANE_BIN")
    cluster = Cluster(work / "cluster", Path(bin_dir) if bin_dir else build_binaries())
    cluster.start()
    os.environ.update({"KUBECONFIG": str(cluster.kubeconfig),
                       "MLKUBE_ALLOW_FILE_ARTIFACTS": "true",
                       "MLKUBE_POD_NETWORKS": "127.0.0.0/8"})  # fmt: skip
    operator_config.cache_clear()
    results: dict[float, list[dict[str, float]]] = {}
    try:
        kube = Kube(str(cluster.kubeconfig))
        apply_crds(kube, REPO / "crds", field_manager="mlkube-bench")
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        with environment(kube, namespace, work / "env") as (routers, servers):
            urls = [p.url for p in routers.pods.values()]
            done = 0
            with Client(urls):
                for interval in intervals:
                    for rep in range(args.reps):
                        done += 1  # each rollout's spec differs: a new revision, a new rollout
                        result = one_rep(kube, namespace, routers, servers, interval, done)
                        results.setdefault(interval, []).append(result)
                        progress = ", ".join(f"{k} {v:.2f}s" for k, v in result.items())
                        # KopfRunner holds sys.stdout while the operator runs.
                        print(f"interval {interval:g}s rep {rep + 1}: {progress}",
                              file=sys.__stderr__, flush=True)  # fmt: skip
    finally:
        cluster.stop()
    print()
    print(table(results))
    print(f"\nload average: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
