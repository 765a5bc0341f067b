"""The sample `credit` endpoint, reconciled by the operator and served by real pods: two
deployments at 70/30 whose models the storage initializers download from the node's S3 store.
Thousands of inferences through the endpoint's Service split as configured (within 4.5
standard deviations of the binomial: a fair 70/30 router fails this about once in 150,000
runs, an 80/20 or 60/40 one every time) and none fails: from this machine (kube-proxy's DNAT)
and from a client pod that finds the endpoint by its DNS name, as a workload in the cluster
does."""

from __future__ import annotations

import collections
import json
import math
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlkube.contract import HEADER_DEPLOYMENT
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.k8s import Kube
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
REQUEST = (REPO / "examples" / "models" / "credit-risk" / "3" / "sample-request.json").read_bytes()


def _infer(ip: str) -> str | None:
    req = urllib.request.Request(
        f"http://{ip}/v2/models/credit-risk/infer",
        data=REQUEST,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
        assert resp.status == 200 and body["outputs"], body
        return resp.headers.get(HEADER_DEPLOYMENT)


def assert_split(counts: collections.Counter[str | None], n: int) -> None:
    """blue/green counts of `n` requests routed 70/30 at random, each within 4.5 sigma."""
    assert set(counts) == {"blue", "green"}, counts
    assert sum(counts.values()) == n
    allowed = 4.5 * math.sqrt(n * 0.7 * 0.3)  # 130 requests of 4,000, 92 of 2,000
    assert abs(counts["blue"] - 0.7 * n) <= allowed, (counts, allowed)


def test_traffic_splits_70_30_through_the_service(credit_endpoint: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        counts = collections.Counter(pool.map(lambda _: _infer(credit_endpoint), range(4000)))
    print(f"\nsplit through Service {credit_endpoint}: {dict(counts)}")
    assert_split(counts, 4000)


# Runs inside a client pod: the request path a workload in the cluster takes (CoreDNS name,
# ClusterIP, kube-proxy, router pod, model pods). Prints the split as its last log line.
CLIENT = """
import collections, json, os, urllib.request
url = "http://credit.default.svc.cluster.local/v2/models/credit-risk/infer"
body, counts, failed = os.environ["REQUEST"].encode(), collections.Counter(), []
for _ in range(int(os.environ["COUNT"])):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            counts[resp.headers.get("x-mlkube-deployment")] += 1
    except Exception as exc:
        failed.append(repr(exc))
print(json.dumps({"counts": counts, "failed": failed[:5], "failures": len(failed)}))
"""


def client_pod(image: str, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "split-client", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": image, "imagePullPolicy": "Never",
                "command": ["python", "-c", CLIENT],
                "env": [{"name": "REQUEST", "value": REQUEST.decode()},
                        {"name": "COUNT", "value": str(count)}],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }  # fmt: skip


def test_a_client_pod_reaches_the_endpoint_by_its_dns_name(
    credit_endpoint: str, node_cluster: tuple[Cluster, RealNode], kube: Kube
) -> None:
    cluster, node = node_cluster
    kube.create(client_pod(node.images["serving"], 2000))
    try:

        def finished() -> str | None:
            pod = kube.get("v1", "Pod", "split-client", "default") or {}
            phase = (pod.get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_for(finished, timeout=300, interval=1, what="client pod finished")
        code, body = cluster.request("GET", "/api/v1/namespaces/default/pods/split-client/log")
        # A log that is one JSON document comes back parsed; anything else as "raw" text.
        log = str(body.get("raw", body))
        assert code == 200 and phase == "Succeeded", f"{phase}: {log[-2000:]}"
        result = body if "counts" in body else json.loads(log.strip().splitlines()[-1])
        print(f"\nsplit from a client pod via credit.default.svc.cluster.local: {result}")
        counts = result["counts"]
        assert result["failures"] == 0, result["failed"]
        assert_split(collections.Counter(counts), 2000)
    finally:
        kube.delete("v1", "Pod", "split-client", "default")
