"""A fresh dev cluster sized for N endpoints, the artifact the N Models verify, and the
operator as a real process (`python -m mlkube operator`, as `make dev` starts it: the operator
identity's kubeconfig and the chart's ClusterRole, cluster-wide, no leader election).

Cluster: kwok fake nodes with room for every pod (two per deployment's replica set plus the
routers), the controller-manager and scheduler at a QPS that keeps them off the critical path,
and an audit log of the operator's requests (ScaleOptions). Artifact: the bundled ONNX example
(examples/models/credit-risk/3, 560 bytes) published once into the dev MinIO store; every Model
points at that one s3:// URI, so each Model really verifies (the operator lists and digests it
in the store, as in production) while the store's work stays small.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from mlkube.builders.operator_config import parse_operator_config
from mlkube.cli.dev import start_operator
from mlkube.devcluster import Cluster, devstore, procs
from mlkube.devcluster.cluster import OPERATOR_USER, REPO_ROOT, ScaleOptions, build_binaries
from mlkube.k8s import Kube
from mlkube.k8s.crds import apply_crds
from mlkube.storage import publish

EXAMPLE = REPO_ROOT / "examples" / "models" / "credit-risk" / "3"
NODES = 2
CLIENT_QPS = 200
OPERATOR = "operator"


def pods_per_endpoint() -> int:
    """Two model deployments (one replica each) and the router's replicas."""
    return 2 + parse_operator_config(os.environ).router_replicas


def scale_options(n: int) -> ScaleOptions:
    per_node = math.ceil(n * pods_per_endpoint() * 1.5 / NODES) + 20
    return ScaleOptions(node_pods=max(110, per_node), client_qps=CLIENT_QPS,
                        audit_users=(OPERATOR_USER,))  # fmt: skip


def kube_for(kubeconfig: Path, pool: int) -> Kube:
    """A client whose connection pool holds `pool` connections (one per concurrent request)."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = pool
    return Kube(api_client=client.ApiClient(cfg))


def start_cluster(workdir: Path, n: int) -> Cluster:
    cluster = Cluster(workdir, build_binaries(), nodes=NODES, scale=scale_options(n))
    cluster.start()
    return cluster


def prepare_namespace(kube: Kube, namespace: str) -> None:
    """CRDs, the namespace and the operator's RoleBinding there (as the chart binds it)."""
    apply_crds(kube, REPO_ROOT / "crds", field_manager="mlkube-bench")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


@dataclass
class Operator:
    """The operator process of one cluster, restartable."""

    cluster: Cluster
    kube: Kube
    env: dict[str, str]

    @property
    def pid(self) -> int:
        return self.cluster.state.pids[OPERATOR]

    def start(self) -> None:
        start_operator(self.cluster, self.kube, self.env)

    def stop(self) -> None:
        procs.stop(self.pid)
        del self.cluster.state.pids[OPERATOR]

    def alive(self) -> bool:
        return procs.alive(self.pid)


def store_and_artifact(
    cluster: Cluster, kube: Kube, namespace: str
) -> tuple[dict[str, str], str, tuple[str, int]]:
    """The dev MinIO store (its Secret in `namespace` for the model pods) and the one artifact:
    (the operator's store environment, artifact URI, (digest, size))."""
    store = devstore.ensure_store(cluster)
    os.environ.update(store.client_env())  # publish() below writes with the store's credentials
    kube.apply(devstore.storage_secret(namespace, store), field_manager="mlkube-bench")
    uri, facts = publish(str(EXAMPLE), store.uri, namespace=namespace, name="credit-risk",
                         version="3")  # fmt: skip
    return devstore.operator_env(store), uri, (facts.digest, facts.size)
