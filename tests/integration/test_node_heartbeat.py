"""Fake nodes stay healthy for as long as the cluster runs, and recover after an outage.

The session cluster runs the controller-manager with a short `--node-monitor-grace-period`
(conftest), so a missing node heartbeat shows within a minute instead of rotting `make dev`
50 s after start: nodes, pods and an endpoint are watched for 2.5 grace periods. A frozen kwok
(a laptop asleep) makes the node-lifecycle controller mark pods NotReady; once kwok runs again
they must come back Ready by themselves, as with a kubelet.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.endpoints import (
    blue_green_spec,
    condition,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.waiting import wait_for

EP = "steady"


def _ready(obj: dict[str, Any]) -> bool:
    return condition(obj, "Ready").get("status") == "True"


def _not_ready(kube: Kube, namespace: str) -> list[str]:
    """Everything that should be Ready and is not, by kind/name."""
    bad = [f"node/{n['metadata']['name']}" for n in kube.list("v1", "Node") if not _ready(n)]
    bad += [
        f"pod/{p['metadata']['name']}"
        for p in kube.list("v1", "Pod", namespace)
        if p["status"].get("phase") == "Running" and not _ready(p)
    ]
    endpoint = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace)
    if endpoint is not None and not _ready(endpoint):
        bad.append(f"onlineendpoint/{EP}")
    return bad


def _grace(cluster: Cluster) -> float:
    grace = cluster.node_monitor_grace_period
    assert grace is not None and grace <= 30, "the session cluster must shorten the grace period"
    return grace


def test_nodes_pods_and_endpoint_stay_ready_past_the_grace_period(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    grace = _grace(cluster)
    create_ready_models(kube, namespace, tmp_path)
    kube.create(endpoint_object(EP, namespace, blue_green_spec()))
    wait_endpoint_ready(kube, namespace, EP, timeout=60)
    pods = kube.list("v1", "Pod", namespace)
    assert len(pods) >= 5  # 3 model servers + 2 routers

    window = 2.5 * grace
    deadline = time.monotonic() + window
    failures: list[tuple[float, list[str]]] = []
    started = time.monotonic()
    while time.monotonic() < deadline:
        bad = _not_ready(kube, namespace)
        if bad:
            failures.append((round(time.monotonic() - started, 1), bad))
        time.sleep(1.0)
    assert failures == [], f"not Ready within {window:.0f}s (grace {grace:.0f}s): {failures[:5]}"

    # ... because kwok renews one Lease per node, the heartbeat the controller-manager checks
    # (the 10-minute status heartbeat alone would have let every node go NotReady).
    leases = {lease["metadata"]["name"] for lease in kube.list(
        "coordination.k8s.io/v1", "Lease", "kube-node-lease")}  # fmt: skip
    assert {f"kwok-{i}" for i in range(cluster.nodes)} <= leases
    now = datetime.now(UTC)
    for lease in kube.list("coordination.k8s.io/v1", "Lease", "kube-node-lease"):
        renewed = datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
        assert (now - renewed).total_seconds() < grace, lease["metadata"]["name"]


def _deployment(name: str, namespace: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]},
            },
        },
    }


def test_pods_recover_once_a_frozen_kwok_runs_again(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    grace = _grace(cluster)
    kube.apply(_deployment("web", namespace))

    def available() -> bool:
        status = (kube.get("apps/v1", "Deployment", "web", namespace) or {}).get("status") or {}
        return status.get("availableReplicas") == 2

    wait_for(available, timeout=60, what="Deployment web Available")
    kwok = cluster.state.pids["kwok"]
    os.kill(kwok, signal.SIGSTOP)  # no Lease renewals, no status updates: a sleeping laptop
    try:
        wait_for(
            lambda: any(not _ready(p) for p in kube.list("v1", "Pod", namespace)),
            timeout=grace + 30,
            what="the node-lifecycle controller to mark pods NotReady",
        )
    finally:
        os.kill(kwok, signal.SIGCONT)
    wait_for(
        lambda: not _not_ready(kube, namespace) and available(),
        timeout=grace + 30,
        what="nodes and pods Ready again after kwok resumed",
    )

    # Later tests schedule pods: the unreachable/not-ready taints must be gone too.
    def untainted() -> bool:
        taints = [t for n in kube.list("v1", "Node") for t in n["spec"].get("taints") or []]
        return not any(t["key"].startswith("node.kubernetes.io/") for t in taints)

    wait_for(untainted, timeout=30, what="node taints removed")
