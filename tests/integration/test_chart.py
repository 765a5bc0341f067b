"""The Helm chart rendered by the real helm CLI (built from the Go module proxy), and its webhook
configurations registered with the real API server: Service references, a CA that stays put
across renders, nothing that blocks a delete or a namespace deletion when the operator is gone,
nothing left behind by an uninstall, and audit stamps that cannot be forged while it is gone."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.webhook_config import build_webhook_configurations, service_client
from mlkube.contract import ANNOTATION_CREATED_BY, ANNOTATION_LAST_MODIFIED_BY, API_VERSION
from mlkube.devcluster import Cluster
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.devcluster.procs import free_port
from mlkube.k8s import ApiError, Kube
from support.helm import by_kind, helm_binary, lint_chart, render_chart
from support.operator import run_operator
from support.waiting import wait_for

ADMISSION = "admissionregistration.k8s.io/v1"
CONFIG_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount")


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def webhooks(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {kind: by_kind(objects, kind)[0]["webhooks"] for kind in CONFIG_KINDS}


def test_chart_registers_service_webhooks_exactly_as_built(helm: Path) -> None:
    objects = render_chart(helm, "mlkube-system")
    (secret,) = by_kind(objects, "Secret")
    ca = secret["data"]["ca.crt"]
    want = build_webhook_configurations(service_client("mlkube-system"), ca_bundle=ca)
    for obj in want:
        obj["metadata"]["name"] = "mlkube.webhooks.mlkube.dev"  # per release: <fullname>.webhooks…
    assert webhooks(objects) == {obj["kind"]: obj["webhooks"] for obj in want}
    for hooks in webhooks(objects).values():
        for hook in hooks:
            assert "url" not in hook["clientConfig"]  # resolved by the host's DNS: never
            assert hook["failurePolicy"] == "Ignore"
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "MLKUBE_WEBHOOK_HOST" not in {e["name"] for e in container["env"]}
    assert container["readinessProbe"]["tcpSocket"]["port"] == "webhook"
    # The operator may not write webhook configurations: the chart owns them.
    for role in by_kind(objects, "ClusterRole"):
        for rule in role["rules"]:
            assert "admissionregistration.k8s.io" not in rule["apiGroups"]


@pytest.mark.parametrize(
    "values", [[], ["watchNamespaces={a,b}", "webhook.tls.mode=certManager"]], ids=["default", "ns"]
)
def test_chart_lints(helm: Path, values: list[str]) -> None:
    assert "0 chart(s) failed" in lint_chart(helm, values)


def test_watch_namespaces_bind_rights_and_webhooks_per_namespace(helm: Path) -> None:
    objects = render_chart(helm, "ops", ["watchNamespaces={team-b,team-a}"])
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"])
                for b in by_kind(objects, "RoleBinding")}  # fmt: skip
    assert bindings == {("team-a", "mlkube-operator"), ("team-b", "mlkube-operator"),
                        ("ops", "mlkube-operator-audit-key"),
                        ("ops", "mlkube-operator-build")}  # fmt: skip
    cluster_bound = {b["roleRef"]["name"] for b in by_kind(objects, "ClusterRoleBinding")}
    assert cluster_bound == {"mlkube-operator-cluster"}  # no namespaced right cluster-wide
    (secret,) = by_kind(objects, "Secret")
    want = build_webhook_configurations(
        service_client("ops"), ca_bundle=secret["data"]["ca.crt"], namespaces=["team-a", "team-b"]
    )
    assert webhooks(objects) == {obj["kind"]: obj["webhooks"] for obj in want}


def test_cert_manager_and_provided_certificates(helm: Path) -> None:
    objects = render_chart(helm, "ops", ["webhook.tls.mode=certManager"])
    assert not by_kind(objects, "Secret")
    certificates = {c["metadata"]["name"]: c["spec"] for c in by_kind(objects, "Certificate")}
    assert certificates["mlkube-webhook"]["secretName"] == "mlkube-webhook-tls"
    assert certificates["mlkube-webhook"]["issuerRef"]["name"] == "mlkube-webhook"
    assert certificates["mlkube-webhook-ca"]["isCA"] is True  # a stable CA across renewals
    for kind in CONFIG_KINDS:
        config = by_kind(objects, kind)[0]
        assert config["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": "ops/mlkube-webhook"
        }
        assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    objects = render_chart(
        helm, "ops",
        ["webhook.tls.mode=provided", "webhook.tls.secretName=my-tls", "webhook.tls.caBundle=Q0E="],
    )  # fmt: skip
    assert not by_kind(objects, "Secret")
    assert {h[0]["clientConfig"]["caBundle"] for h in webhooks(objects).values()} == {"Q0E="}
    (deployment,) = by_kind(objects, "Deployment")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-tls", "secret": {"secretName": "my-tls"}} in volumes
    with pytest.raises(AssertionError, match="secretName"):
        render_chart(helm, "ops", ["webhook.tls.mode=provided"])


def test_generated_ca_is_kept_across_renders(
    helm: Path, kube: Kube, cluster: Cluster, namespace: str
) -> None:
    """Install, then upgrade (or a GitOps render that can look up): the same CA and cert."""
    first = render_chart(helm, namespace, kubeconfig=cluster.kubeconfig)
    (secret,) = by_kind(first, "Secret")
    kube.apply(secret, field_manager="mlkube-tests")
    again = render_chart(helm, namespace, kubeconfig=cluster.kubeconfig)
    assert by_kind(again, "Secret") == [secret]
    assert webhooks(again) == webhooks(first)


@contextlib.contextmanager
def chart_installed(
    kube: Kube, objects: list[dict[str, Any]], namespace: str, port: int
) -> Iterator[list[dict[str, Any]]]:
    """What `helm install` creates, minus the operator Deployment (run in-process instead) and
    the RBAC objects (the session binds the same rules to the operator identity). The Service
    becomes an ExternalName alias of localhost, standing in for kube-proxy: kube-apiserver
    resolves the webhook's Service reference itself, to the alias's host."""
    applied = []
    for obj in objects:
        # CRDs: the session's are the same, and `helm uninstall` keeps them (resource-policy
        # keep); deleting them here would delete every custom resource of later tests.
        if obj["kind"] in ("Deployment", "CustomResourceDefinition", *RBAC_KINDS):
            continue
        if obj["kind"] == "Service":
            obj = {**obj, "spec": {"type": "ExternalName", "externalName": "localhost",
                                   "ports": [{"name": "webhook", "port": port}]}}  # fmt: skip
        kube.apply(obj, field_manager="mlkube-tests")
        applied.append(obj)
    yield applied


def uninstall(kube: Kube, applied: list[dict[str, Any]]) -> None:
    """What `helm uninstall` does: delete every object of the release."""
    for obj in applied:
        meta = obj["metadata"]
        kube.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def model(name: str, namespace: str, artifact: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "Model",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {"modelName": "churn", "version": name.rsplit("-v", 1)[-1],
                 "framework": "onnx", "artifact": {"uri": artifact}},
    }  # fmt: skip


def status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = (kube.get(API_VERSION, "Model", name, namespace) or {}).get(
        "status"
    ) or {}
    return found


def test_chart_webhooks_work_block_nothing_without_the_operator_and_leave_nothing(
    helm: Path, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    objects = render_chart(
        helm, namespace, [f"webhook.port={port}", f"watchNamespaces={{{namespace}}}"]
    )
    (secret,) = by_kind(objects, "Secret")
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_bytes(base64.b64decode(secret["data"][name]))
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    wanted = ("MLKUBE_WEBHOOK_PORT", "MLKUBE_NAMESPACE")
    env = {e["name"]: e["value"] for e in container["env"] if e["name"] in wanted}
    env.update(MLKUBE_WEBHOOK_CERT=str(tmp_path / "tls.crt"),
               MLKUBE_WEBHOOK_KEY=str(tmp_path / "tls.key"),
               MLKUBE_WEBHOOK_ADDR="127.0.0.1", MLKUBE_OPERATOR_USERNAME=OPERATOR_USER)  # fmt: skip
    assert env["MLKUBE_WEBHOOK_PORT"] == str(port) and env["MLKUBE_NAMESPACE"] == namespace
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"onnx bytes for the chart test")
    before = {c["metadata"]["name"] for k in CONFIG_KINDS for c in kube.list(ADMISSION, k)}

    with chart_installed(kube, objects, namespace, port) as applied:
        # 1. Served through the chart's Service reference: stamps (with proofs) and the guard.
        with run_operator(namespace, env=env):
            wait_for(lambda: _stamped_dry_run(kube, namespace, artifact.as_uri()),
                     what="the API server to call the webhook through the Service")  # fmt: skip
            kube.create(model("churn-v1", namespace, artifact.as_uri()))
            wait_for(lambda: status(kube, namespace, "churn-v1").get("createdBy") == "admin",
                     what="a proven created-by in status")  # fmt: skip
            kube.create({"apiVersion": API_VERSION, "kind": "OnlineEndpoint",
                         "metadata": {"name": "churn", "namespace": namespace},
                         "spec": {"deployments": [{"name": "blue", "model": "churn-v1"}],
                                  "traffic": {"blue": 100}}})  # fmt: skip
            with pytest.raises(ApiError) as refused:
                kube.delete(API_VERSION, "Model", "churn-v1", namespace)
            assert refused.value.status == 409
            kube.delete(API_VERSION, "OnlineEndpoint", "churn", namespace)
            wait_for(lambda: kube.get(API_VERSION, "OnlineEndpoint", "churn", namespace) is None,
                     what="endpoint gone")  # fmt: skip
        # The operator registered nothing itself.
        after = {c["metadata"]["name"] for k in CONFIG_KINDS for c in kube.list(ADMISSION, k)}
        assert after - before == {"mlkube.webhooks.mlkube.dev"}  # <fullname>.webhooks.mlkube.dev

        # 2. Operator gone: writes and deletes go through; a forged stamp is not believed.
        forged = {ANNOTATION_CREATED_BY: "alice", ANNOTATION_LAST_MODIFIED_BY: "alice"}
        kube.create(model("churn-v2", namespace, artifact.as_uri(), annotations=forged))
        assert kube.delete(API_VERSION, "Model", "churn-v1", namespace)
        with run_operator(namespace, env=env):
            wait_for(lambda: status(kube, namespace, "churn-v2").get("phase") == "Ready",
                     what="the forged Model reconciled")  # fmt: skip
        got = status(kube, namespace, "churn-v2")
        assert (got["createdBy"], got["lastModifiedBy"]) == ("unknown", "unknown")
        annotations = (kube.get(API_VERSION, "Model", "churn-v2", namespace) or {})["metadata"]
        assert annotations["annotations"][ANNOTATION_CREATED_BY] == "alice"  # kept, not trusted

        # 3. Operator stopped, a namespace holding a Model is deleted: gone within 60 s.
        assert not (kube.get(API_VERSION, "Model", "churn-v2", namespace) or {})["metadata"].get(
            "finalizers"
        )
        started = time.monotonic()
        kube.delete("v1", "Namespace", namespace)
        wait_for(lambda: kube.get("v1", "Namespace", namespace) is None, timeout=60,
                 interval=0.5, what="the namespace to be deleted")  # fmt: skip
        print(f"namespace deleted in {time.monotonic() - started:.1f}s without the operator")

        # 4. Uninstall: no mlkube.dev webhook configuration remains.
        uninstall(kube, applied)
    left = {c["metadata"]["name"] for k in CONFIG_KINDS for c in kube.list(ADMISSION, k)}
    assert not {name for name in left if name.endswith("mlkube.dev")} - before


def _stamped_dry_run(kube: Kube, namespace: str, artifact: str) -> bool:
    try:
        dry = kube.request(
            "POST",
            f"/apis/{API_VERSION}/namespaces/{namespace}/models",
            body=model("probe-v1", namespace, artifact),
            query=[("dryRun", "All")],
        )
    except ApiError:
        return False
    return ANNOTATION_CREATED_BY in dry["metadata"].get("annotations", {})
