"""Audit stamping by a real mutating webhook (TLS with a test-made CA, two token users), the
status history the operator keeps, and the Model DELETE guard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.contract import (
    ANNOTATION_CREATED_BY,
    ANNOTATION_LAST_MODIFIED_BY,
    API_VERSION,
)
from mlkube.devcluster import Cluster
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.k8s import ApiError, Kube
from support.operator import registered_webhooks, run_operator, webhook_setup
from support.waiting import wait_for


def model(name: str, artifact: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "Model", "metadata": {"name": name},
        "spec": {"modelName": "churn", "version": name.rsplit("-v", 1)[-1],
                 "framework": "onnx", "artifact": {"uri": artifact}, **spec},
    }  # fmt: skip


@pytest.fixture
def users(cluster: Cluster, kube: Kube, namespace: str) -> dict[str, Kube]:
    """alice and bob may edit Models (and read endpoints) in the test namespace only."""
    kube.create({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "model-editor", "namespace": namespace},
        "rules": [{"apiGroups": ["mlkube.dev"], "resources": ["models", "onlineendpoints"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}],
    })  # fmt: skip
    kube.create({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "model-editors", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "model-editor"},
        "subjects": [{"kind": "Group", "name": "mlkube:users",
                      "apiGroup": "rbac.authorization.k8s.io"}],
    })  # fmt: skip
    return {u: Kube(str(cluster.kubeconfig_for(u))) for u in ("alice", "bob")}


@pytest.fixture
def artifact(tmp_path: Path) -> str:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx bytes for the audit test")
    return path.as_uri()


@pytest.fixture
def webhook_operator(
    kube: Kube, namespace: str, tmp_path: Path, users: dict[str, Kube], artifact: str
) -> Iterator[None]:
    setup = webhook_setup(tmp_path, OPERATOR_USER, namespace)
    with registered_webhooks(kube, setup.configurations), run_operator(namespace, env=setup.env):
        probe = model("probe-v1", artifact)
        probe["metadata"]["namespace"] = namespace

        def stamped() -> bool:
            try:
                dry = users["alice"].request(
                    "POST",
                    f"/apis/{API_VERSION}/namespaces/{namespace}/models",
                    body=probe,
                    query=[("dryRun", "All")],
                )
            except ApiError:
                return False
            return ANNOTATION_CREATED_BY in dry["metadata"].get("annotations", {})

        wait_for(stamped, timeout=30, what="the mutating webhook to be called")
        yield


def test_webhook_stamps_real_users_and_operator_keeps_history(
    users: dict[str, Kube],
    kube: Kube,
    namespace: str,
    artifact: str,
    webhook_operator: None,
) -> None:
    alice, bob = users["alice"], users["bob"]
    body = model("churn-v1", artifact)
    body["metadata"]["namespace"] = namespace
    body["metadata"]["annotations"] = {ANNOTATION_CREATED_BY: "mallory"}  # forged: overwritten
    created = alice.create(body)
    assert created["metadata"]["annotations"][ANNOTATION_CREATED_BY] == "alice"
    assert created["metadata"]["annotations"][ANNOTATION_LAST_MODIFIED_BY] == "alice"
    wait_for(
        lambda: _status(kube, namespace, "churn-v1").get("phase") == "Ready", what="Model Ready"
    )

    # bob changes the spec: last-modified-by moves, created-by stays.
    bob.patch(
        API_VERSION,
        "Model",
        "churn-v1",
        {"spec": {"description": "retrained weekly", "properties": {"team": "growth"}}},
        namespace,
    )
    # alice only relabels (metadata): no stamp; and cannot tamper with the stamps.
    alice.patch(
        API_VERSION,
        "Model",
        "churn-v1",
        {
            "metadata": {
                "labels": {"stage": "prod"},
                "annotations": {ANNOTATION_LAST_MODIFIED_BY: "mallory"},
            }
        },
        namespace,
    )
    obj = kube.get(API_VERSION, "Model", "churn-v1", namespace) or {}
    ann = obj["metadata"]["annotations"]
    assert ann[ANNOTATION_CREATED_BY] == "alice"
    assert ann[ANNOTATION_LAST_MODIFIED_BY] == "bob"

    def history_of_two() -> list[dict[str, Any]] | None:
        history = _status(kube, namespace, "churn-v1").get("history", [])
        return history if len(history) == 2 else None

    history = wait_for(history_of_two, what="two history entries")
    assert [h["user"] for h in history] == ["alice", "bob"]
    assert [h["generation"] for h in history] == [1, 2]
    assert set(history[1]["changes"]) == {"spec.description", "spec.properties"}
    status = _status(kube, namespace, "churn-v1")
    assert (status["createdBy"], status["lastModifiedBy"]) == ("alice", "bob")
    reasons = {
        e["reason"]
        for e in kube.list("v1", "Event", namespace)
        if e["involvedObject"]["name"] == "churn-v1"
    }
    assert {"Registered", "Verified"} <= reasons


def test_status_writes_and_operator_writes_are_not_stamped(
    users: dict[str, Kube],
    kube: Kube,
    namespace: str,
    artifact: str,
    webhook_operator: None,
    cluster: Cluster,
) -> None:
    body = model("churn-v2", artifact)
    body["metadata"]["namespace"] = namespace
    users["alice"].create(body)
    wait_for(
        lambda: _status(kube, namespace, "churn-v2").get("phase") == "Ready", what="Model Ready"
    )
    # The operator's own identity changing spec is not a user change; admin's is.
    operator = Kube(str(cluster.kubeconfig_for("operator")))
    operator.patch(
        API_VERSION, "Model", "churn-v2", {"spec": {"description": "by operator"}}, namespace
    )
    ann = (kube.get(API_VERSION, "Model", "churn-v2", namespace) or {})["metadata"]["annotations"]
    assert ann[ANNOTATION_LAST_MODIFIED_BY] == "alice"
    kube.patch(API_VERSION, "Model", "churn-v2", {"spec": {"description": "by admin"}}, namespace)
    ann = (kube.get(API_VERSION, "Model", "churn-v2", namespace) or {})["metadata"]["annotations"]
    assert ann[ANNOTATION_LAST_MODIFIED_BY] == "admin"


def test_delete_guard_refuses_a_referenced_model_and_allows_after(
    users: dict[str, Kube],
    kube: Kube,
    namespace: str,
    artifact: str,
    webhook_operator: None,
) -> None:
    alice = users["alice"]
    body = model("churn-v3", artifact)
    body["metadata"]["namespace"] = namespace
    alice.create(body)
    endpoint = {
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": "churn", "namespace": namespace},
        "spec": {"deployments": [{"name": "blue", "model": "churn-v3"}],
                 "traffic": {"blue": 100}},
    }  # fmt: skip
    kube.create(endpoint)
    with pytest.raises(ApiError) as err:
        alice.delete(API_VERSION, "Model", "churn-v3", namespace)
    assert err.value.status == 409
    assert "OnlineEndpoint churn" in str(err.value)
    assert kube.get(API_VERSION, "Model", "churn-v3", namespace) is not None

    kube.delete(API_VERSION, "OnlineEndpoint", "churn", namespace)
    wait_for(
        lambda: kube.get(API_VERSION, "OnlineEndpoint", "churn", namespace) is None,
        what="endpoint gone",
    )
    assert alice.delete(API_VERSION, "Model", "churn-v3", namespace)


def _status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "Model", name, namespace) or {}
    status: dict[str, Any] = obj.get("status", {})
    return status


def test_delete_guard_covers_batch_endpoints_until_the_deployment_is_removed(
    users: dict[str, Kube],
    kube: Kube,
    namespace: str,
    artifact: str,
    webhook_operator: None,
) -> None:
    alice = users["alice"]
    for name in ("churn-v3", "churn-v4"):
        body = model(name, artifact)
        body["metadata"]["namespace"] = namespace
        alice.create(body)
    kube.create({
        "apiVersion": API_VERSION, "kind": "BatchEndpoint",
        "metadata": {"name": "churn-batch", "namespace": namespace},
        "spec": {"deployments": [{"name": "a", "model": "churn-v3"},
                                 {"name": "b", "model": "churn-v4"}],
                 "defaultDeployment": "a"},
    })  # fmt: skip
    kube.create({
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": "churn", "namespace": namespace},
        "spec": {"deployments": [{"name": "blue", "model": "churn-v3"}],
                 "traffic": {"blue": 100}},
    })  # fmt: skip
    with pytest.raises(ApiError) as err:
        alice.delete(API_VERSION, "Model", "churn-v3", namespace)
    assert err.value.status == 409
    assert "is deployed by OnlineEndpoint churn and BatchEndpoint churn-batch" in str(err.value)
    with pytest.raises(ApiError) as err:
        alice.delete(API_VERSION, "Model", "churn-v4", namespace)
    assert "BatchEndpoint churn-batch" in str(err.value)
    assert "OnlineEndpoint" not in str(err.value)

    # deployedBy lists the batch endpoint too, and forgets it once the deployment goes.
    def users_of(name: str) -> set[tuple[str, str]]:
        refs = _status(kube, namespace, name).get("deployedBy") or []
        return {(r["kind"], r["name"]) for r in refs}

    wait_for(lambda: ("BatchEndpoint", "churn-batch") in users_of("churn-v4"), what="deployedBy")
    kube.patch(
        API_VERSION, "BatchEndpoint", "churn-batch",
        {"spec": {"deployments": [{"name": "a", "model": "churn-v3"}]}}, namespace,
    )  # fmt: skip
    wait_for(lambda: not users_of("churn-v4"), what="churn-v4 released")
    assert alice.delete(API_VERSION, "Model", "churn-v4", namespace)

    kube.delete(API_VERSION, "BatchEndpoint", "churn-batch", namespace)
    wait_for(
        lambda: users_of("churn-v3") == {("OnlineEndpoint", "churn")}, what="churn-v3 released"
    )
