"""The operator image running as a pod, under the generated RBAC bound to its service account
(in-cluster config through the `kubernetes` Service), reconciles Models: it fetches the
artifact over HTTP from this machine and over S3 from the node's MinIO (s3fs is in the operator
image), verifies the digest and marks the Model Ready. No host-side operator runs here."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.rbac import build_cluster_role_binding, build_operator_cluster_role
from mlkube.contract import API_VERSION, ENV_S3_ENDPOINT_URL, KIND_MODEL
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_config import SERVICE_CIDR
from mlkube.devcluster.realnode_store import BUCKET, SECRET_NAME, build_storage_secret
from mlkube.k8s import ApiError, Kube
from mlkube.k8s.crds import apply_crds
from mlkube.storage import compute_digest, publish
from support.artifacts import artifact_server
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mlkube-system"
ACCOUNT = "mlkube-operator"


def operator_pod(image: str, store_endpoint: str) -> dict[str, Any]:
    """What the chart's Deployment runs, reduced to one pod: restricted, read-only root."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mlkube-operator", "namespace": NAMESPACE},
        "spec": {
            "serviceAccountName": ACCOUNT,
            "terminationGracePeriodSeconds": 2,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "operator",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "env": [
                        # The dev node's own addresses (the artifact server on the bridge) are
                        # not internal here; Services still are.
                        {"name": "MLKUBE_ARTIFACT_INTERNAL_NETWORKS", "value": SERVICE_CIDR},
                        {"name": ENV_S3_ENDPOINT_URL, "value": store_endpoint},
                    ],
                    # The store's credentials, from a Secret (never in the pod spec).
                    "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


@pytest.fixture(scope="module")
def operator_in_a_pod(node_cluster: tuple[Cluster, RealNode], kube: Kube) -> Iterator[str]:
    cluster, node = node_cluster
    assert "operator" not in cluster.state.pids, "a host-side operator would reconcile too"
    apply_crds(kube, REPO / "crds", field_manager="mlkube-e2e")
    kube.apply(build_operator_cluster_role())
    kube.apply(
        build_cluster_role_binding(
            "mlkube-operator-pod", "mlkube-operator", service_account=(NAMESPACE, ACCOUNT)
        )
    )
    for obj in (
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": ACCOUNT, "namespace": NAMESPACE}},
        build_storage_secret(NAMESPACE, node.store_env()["AWS_SECRET_ACCESS_KEY"]),
        operator_pod(node.images["operator"], node.store_env()[ENV_S3_ENDPOINT_URL]),
    ):  # fmt: skip
        kube.apply(obj)  # mlkube-system may exist already (the host operator's webhooks)
    yield NAMESPACE
    with contextlib.suppress(ApiError):
        kube.delete("v1", "Namespace", NAMESPACE)


def test_operator_pod_reconciles_a_model(
    operator_in_a_pod: str, node_cluster: tuple[Cluster, RealNode], kube: Kube, namespace: str
) -> None:
    with artifact_server(REPO / "examples" / "models" / "credit-risk" / "3") as base:
        uri = f"{base}model.onnx"
        digest = compute_digest(uri).digest
        _create_and_wait(kube, namespace, uri, digest, node_cluster[0])


def test_operator_pod_verifies_an_s3_model(
    operator_in_a_pod: str, node_cluster: tuple[Cluster, RealNode], kube: Kube, namespace: str
) -> None:
    saved = dict(os.environ)
    os.environ.update(node_cluster[1].store_env())
    try:
        uri, facts = publish(
            str(REPO / "examples" / "models" / "credit-risk" / "3"), f"s3://{BUCKET}",
            namespace=namespace, name="credit-risk", version="3",
        )  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(saved)
    _create_and_wait(kube, namespace, uri, facts.digest, node_cluster[0])


def _create_and_wait(kube: Kube, namespace: str, uri: str, digest: str, cluster: Cluster) -> None:
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": KIND_MODEL,
            "metadata": {"name": "credit-risk-v3", "namespace": namespace},
            "spec": {
                "modelName": "credit-risk",
                "version": "3",
                "framework": "onnx",
                "artifact": {"uri": uri},
            },
        }
    )

    def ready() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, KIND_MODEL, "credit-risk-v3", namespace) or {}
        return obj if (obj.get("status") or {}).get("phase") == "Ready" else None

    try:
        model = wait_for(ready, timeout=120, interval=1, what="Model Ready (operator pod)")
    except AssertionError as err:
        raise AssertionError(f"{err}\noperator pod log:\n{_log(cluster)}") from None
    assert model["status"]["artifact"]["digest"] == digest
    pod = kube.get("v1", "Pod", "mlkube-operator", NAMESPACE) or {}
    assert pod["spec"]["nodeName"] == "mlkube-node"
    assert pod["status"]["phase"] == "Running"


def _log(cluster: Cluster) -> str:
    _, body = cluster.request(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/pods/mlkube-operator/log?tailLines=40"
    )
    return str(body.get("raw", body))
