"""The operator image running as a pod on the real node, installed from the chart by the real
helm (`helm install --wait`, as docs/install.md says), under the chart's RBAC (in-cluster config
through the `kubernetes` Service), reconciles Models: it fetches the artifact over HTTP from this
machine and over S3 from the node's MinIO (s3fs is in the operator image; the store's endpoint
and credentials reach it through the chart's extraEnv/extraEnvFrom, the credentials from a
Secret), verifies the digest and marks the Model Ready. No host-side operator runs here."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.contract import API_VERSION, ENV_S3_ENDPOINT_URL, KIND_MODEL
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_config import SERVICE_CIDR
from mlkube.devcluster.realnode_store import BUCKET, SECRET_NAME, build_storage_secret
from mlkube.k8s import ApiError, Kube
from mlkube.k8s.crds import apply_crds
from mlkube.storage import compute_digest, publish
from support.artifacts import artifact_server
from support.helm import CHART, helm_binary, helm_env
from support.node_store import store_env
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mlkube-system"
RELEASE = "mlkube"
OPERATOR_PODS = "app.kubernetes.io/name=mlkube,app.kubernetes.io/component=operator"
# What the host-side operator of the endpoint modules (conftest.start_operator) registered:
# not Helm's, and it would stand in the release's way (same names) or serve stale webhooks.
DEV_LEFTOVERS = (
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "webhooks.mlkube.dev"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "webhooks.mlkube.dev"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "mlkube-operator"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "mlkube-operator"),
)


def chart_values(image: str, store_endpoint: str) -> dict[str, Any]:
    """The real node's settings for the chart: the image as loaded (never pulled), the dev
    node's own addresses (the artifact server on the bridge) not internal, Services still are;
    the store's endpoint, and its credentials from a Secret (never in the pod spec)."""
    return {
        # The CRDs are this tier's (apply_crds, shared by every module), not the release's: a
        # chart that renders them would refuse to take over CRDs it did not create.
        "crds": {"install": False},
        "image": {"operator": image, "pullPolicy": "Never"},
        "artifacts": {"internalNetworks": [SERVICE_CIDR]},
        "extraEnv": [{"name": ENV_S3_ENDPOINT_URL, "value": store_endpoint}],
        "extraEnvFrom": [{"secretRef": {"name": SECRET_NAME}}],
    }


def helm(cluster: Cluster, *args: str) -> str:
    argv = [str(helm_binary()), *args, "--namespace", NAMESPACE,
            "--kubeconfig", str(cluster.kubeconfig)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, env=helm_env(), check=False)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {out.returncode}:\n{out.stdout}{out.stderr}")
    return out.stdout


def drop_unmanaged(kube: Kube, api: str, kind: str, name: str) -> None:
    obj = kube.get(api, kind, name)
    if obj and "meta.helm.sh/release-name" not in (obj["metadata"].get("annotations") or {}):
        kube.delete(api, kind, name)


@pytest.fixture(scope="module")
def operator_in_a_pod(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    cluster, node = node_cluster
    assert "operator" not in cluster.state.pids, "a host-side operator would reconcile too"
    apply_crds(kube, REPO / "crds", field_manager="mlkube-e2e")
    for api, kind, name in DEV_LEFTOVERS:
        drop_unmanaged(kube, api, kind, name)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kube.apply(build_storage_secret(NAMESPACE, node.store_env()["AWS_SECRET_ACCESS_KEY"]))
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(yaml.safe_dump(
        chart_values(node.images["operator"], node.store_env()[ENV_S3_ENDPOINT_URL])
    ))  # fmt: skip
    try:
        # --wait: the pod is Ready, i.e. its webhook server listens (the chart's readiness probe).
        helm(cluster, "install", RELEASE, str(CHART), "--values", str(values), "--wait",
             "--timeout", "5m")  # fmt: skip
        yield NAMESPACE
    finally:
        # Later modules run a host-side operator: the release (its webhooks) must be gone.
        helm(cluster, "uninstall", RELEASE, "--wait", "--ignore-not-found")
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
    with store_env(node_cluster[1].store_env()):
        uri, facts = publish(
            str(REPO / "examples" / "models" / "credit-risk" / "3"), f"s3://{BUCKET}",
            namespace=namespace, name="credit-risk", version="3",
        )  # fmt: skip
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
    pods = kube.list("v1", "Pod", NAMESPACE, label_selector=OPERATOR_PODS)  # 1, or 2 in HA
    assert pods, "no operator pod"
    for pod in pods:
        assert pod["spec"]["nodeName"] == "mlkube-node"
        assert pod["status"]["phase"] == "Running"


def _log(cluster: Cluster) -> str:
    status, pods = cluster.request(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={OPERATOR_PODS}"
    )
    logs = []
    for pod in pods.get("items", []):
        name = pod["metadata"]["name"]
        _, body = cluster.request(
            "GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/log?tailLines=40"
        )
        logs.append(f"--- {name}\n{body.get('raw', body)}")
    return "\n".join(logs) or f"no operator pod ({status})"
