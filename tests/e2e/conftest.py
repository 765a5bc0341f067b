"""E2E fixtures: a control plane plus the real node (containerd, kubelet, kube-proxy, CoreDNS),
started once per session, so pods actually run mlkube's images.

The tier needs root on a Debian/Ubuntu machine (hack/node/packages.sh installs the runtime)
and the real node's bridge free (no `mlkube dev up --real-node` running). It is part of
`make test` (hack/test runs it as its own pytest session after the rest, so the node is up only
while it runs); without root it fails with the reason rather than skipping. To leave it out of a
local inner loop, ask for that explicitly: MLKUBE_E2E=0.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.operator_config import ENV_ARTIFACT_STORE, ENV_DRIFT_POLL_INTERVAL
from mlkube.cli.dev import start_operator
from mlkube.cli.samples import install_samples
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster, procs, realnode_net
from mlkube.devcluster.cluster import build_binaries
from mlkube.devcluster.realnode import RealNode, operator_env, unsupported_reason
from mlkube.devcluster.realnode_store import BUCKET, build_storage_secret
from mlkube.k8s import ApiError, Kube
from mlkube.k8s.crds import apply_crds
from support.node_store import store_env
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

if os.environ.get("MLKUBE_E2E", "") == "0":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, RealNode]]:
    reason = unsupported_reason()
    if reason:
        pytest.fail(f"the e2e tier needs the real node: {reason}")
    bin_dir = os.environ.get("MLKUBE_CONTROLPLANE_BIN")
    # A short path: containerd and CNI put socket paths under it.
    workdir = Path(tmp_path_factory.mktemp("e2e"))
    cluster = Cluster(workdir, Path(bin_dir) if bin_dir else build_binaries(), nodes=0)
    started = time.monotonic()
    cluster.start()
    node = RealNode(cluster)
    try:
        node.start(images=("pause", "serving", "operator"), variants=("serving-sklearn",))
        print(f"\ncontrol plane + real node up in {time.monotonic() - started:.1f}s")
        yield cluster, node
    finally:
        problems = node.stop()
        cluster.stop()
        assert not problems, f"real node teardown left: {problems}"
        # `down` restores the machine: no bridge, no KUBE-* chains or rules of ours.
        assert realnode_net.leftovers() == []
        assert not realnode_net.ip_forward_enabled()


@pytest.fixture(scope="session")
def kube(node_cluster: tuple[Cluster, RealNode]) -> Kube:
    return Kube(str(node_cluster[0].kubeconfig))


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    with contextlib.suppress(ApiError):
        kube.delete("v1", "Namespace", name)


@pytest.fixture
def restricted_ns(node_cluster: tuple[Cluster, RealNode], kube: Kube) -> Iterator[str]:
    """A namespace enforcing Pod Security "restricted", holding the store's credentials Secret
    (batch and step pods read their inputs from the node's store with it)."""
    name = f"e2e-rs-{uuid.uuid4().hex[:6]}"
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}
    kube.create({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": name, "labels": labels}})  # fmt: skip
    kube.create(build_storage_secret(name, node_cluster[1].store_env()["AWS_SECRET_ACCESS_KEY"]))
    yield name
    with contextlib.suppress(ApiError):
        kube.delete("v1", "Namespace", name)


def _endpoint_ready(kube: Kube) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "OnlineEndpoint", "credit", "default") or {}
    status = obj.get("status") or {}
    conds = status.get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
    current = status.get("observedGeneration") == obj["metadata"]["generation"]
    return obj if ready and current else None


def _serves(ip: str) -> bool | None:
    request = urllib.request.Request(
        f"http://{ip}/v2/models/credit-risk/infer",
        data=(
            REPO / "examples" / "models" / "credit-risk" / "3" / "sample-request.json"
        ).read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # an answer (e.g. 401 once a test turned key auth on): the Service routes
    except OSError:
        return None  # refused or unreachable: not routed yet


@pytest.fixture(scope="module")
def credit_endpoint(node_cluster: tuple[Cluster, RealNode], kube: Kube) -> Iterator[str]:
    """The samples as `mlkube dev up --real-node` installs them; yields the Service's IP."""
    cluster, node = node_cluster
    apply_crds(kube, REPO / "crds", field_manager="mlkube-e2e")
    # Poll drift sidecars often: the drift test waits for the status, not for a 30 s tick.
    # Pipeline step outputs and the step cache under the node's bucket (as `make dev` does).
    env = {**operator_env(node), ENV_DRIFT_POLL_INTERVAL: "2",
           ENV_ARTIFACT_STORE: f"s3://{BUCKET}/pipelines"}  # fmt: skip
    start_operator(cluster, kube, env)
    with store_env(node.store_env()):
        # The sample Pipeline's steps run the imported serving image (as `make dev --real-node`).
        # Its onDrift trigger is left out: the traffic tests send one repeated request through
        # `credit`, which drifts from green's baseline and would start a retrain (and a canary)
        # under them; test_pipeline_drift.py proves the loop on an endpoint of its own.
        install_samples(
            kube, cluster.workdir, store_uri=f"s3://{BUCKET}",
            step_image=node.images["serving"], pipeline_triggers=False,
        )  # fmt: skip
    wait_for(lambda: _endpoint_ready(kube), timeout=240, interval=1, what="endpoint credit Ready")
    service = kube.get("v1", "Service", "credit", "default")
    assert service is not None
    ip = str(service["spec"]["clusterIP"])
    # Ready means the pods are; the Service routes once the EndpointSlice controller and
    # kube-proxy caught up (a second or so later): until then connections are refused.
    wait_for(lambda: _serves(ip), timeout=60, interval=0.5, what="Service credit routing")
    yield ip
    # Other modules run the operator differently (as a pod): only one may reconcile.
    procs.stop(cluster.state.pids.pop("operator"))
