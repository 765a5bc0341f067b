"""The sample `credit` endpoint, reconciled by the operator and served by real pods: two
deployments at 70/30 whose models the storage initializers download from the node's S3 store.
2,000 inferences through the endpoint's Service (kube-proxy's DNAT, from this machine) split
within 3 points of the configured weights, and none fails."""

from __future__ import annotations

import collections
import json
import os
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli.dev import start_operator
from mlkube.cli.samples import install_samples
from mlkube.contract import API_VERSION, HEADER_DEPLOYMENT
from mlkube.devcluster import Cluster, procs
from mlkube.devcluster.realnode import RealNode, operator_env
from mlkube.devcluster.realnode_store import BUCKET
from mlkube.k8s import Kube
from mlkube.k8s.crds import apply_crds
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
REQUEST = (REPO / "examples" / "models" / "credit-risk" / "3" / "sample-request.json").read_bytes()


def _endpoint_ready(kube: Kube) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "OnlineEndpoint", "credit", "default") or {}
    status = obj.get("status") or {}
    conds = status.get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
    current = status.get("observedGeneration") == obj["metadata"]["generation"]
    return obj if ready and current else None


@pytest.fixture(scope="module")
def credit_endpoint(node_cluster: tuple[Cluster, RealNode], kube: Kube) -> Iterator[str]:
    """The samples as `mlkube dev up --real-node` installs them; yields the Service's IP."""
    cluster, node = node_cluster
    apply_crds(kube, REPO / "crds", field_manager="mlkube-e2e")
    start_operator(cluster, kube, operator_env(node))
    saved = dict(os.environ)
    os.environ.update(node.store_env())
    try:
        install_samples(kube, cluster.workdir, store_uri=f"s3://{BUCKET}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    wait_for(lambda: _endpoint_ready(kube), timeout=240, interval=1, what="endpoint credit Ready")
    service = kube.get("v1", "Service", "credit", "default")
    assert service is not None
    yield service["spec"]["clusterIP"]
    # Other modules run the operator differently (as a pod): only one may reconcile.
    procs.stop(cluster.state.pids.pop("operator"))


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


def test_traffic_splits_70_30_through_the_service(credit_endpoint: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        counts = collections.Counter(pool.map(lambda _: _infer(credit_endpoint), range(2000)))
    print(f"\nsplit through Service {credit_endpoint}: {dict(counts)}")
    assert set(counts) == {"blue", "green"}
    assert abs(counts["blue"] / 2000 - 0.70) <= 0.03
    assert abs(counts["green"] / 2000 - 0.30) <= 0.03
