"""On the real control plane: endpoints never collide on child names, never adopt, modify or
delete a user's object (NameConflict instead), and what they create is one POST, never
rewritten while its manifest stays the same (test_endpoint_child_writes.py: a field the
manifest drops later still leaves the child)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from mlkube.builders.names import deployment_name, keys_secret_name
from mlkube.contract import API_VERSION, FIELD_MANAGER
from mlkube.k8s import Kube
from mlkube.reconcile.apply_needed import MANIFEST_DIGEST
from support.endpoints import (
    blue_green_spec,
    condition,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.waiting import wait_for

EP = "aws"


def user_objects(namespace: str) -> list[dict[str, Any]]:
    """A user's Secret named like the old keys Secret, and a Service at green's exact name."""
    keys = base64.b64encode(b"AKIA-user-secret\n").decode()
    return [
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": f"{EP}-keys", "namespace": namespace, "labels": {"team": "infra"}},
         "data": {"keys": keys, "region": base64.b64encode(b"eu-west-1").decode()}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": deployment_name(EP, "green"), "namespace": namespace},
         "spec": {"ports": [{"port": 5432}], "selector": {"app": "postgres"}}},
    ]  # fmt: skip


def fingerprint(obj: dict[str, Any] | None) -> Any:
    assert obj is not None, "the user's object is gone"
    meta = obj["metadata"]
    managers = sorted(m["manager"] for m in meta.get("managedFields") or [])
    return (meta["uid"], meta["resourceVersion"], meta.get("ownerReferences"), managers,
            obj.get("data"), obj.get("spec", {}).get("ports"))  # fmt: skip


def test_user_objects_are_never_adopted_and_a_taken_name_is_a_name_conflict(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    mine = [kube.create(obj) for obj in user_objects(namespace)]
    before = [fingerprint(o) for o in mine]
    kube.create(endpoint_object(EP, namespace, blue_green_spec(auth={"mode": "key"})))

    def conflicted() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace)
        return obj if condition(obj, "Degraded").get("reason") == "NameConflict" else None

    obj = wait_for(conflicted, timeout=20, interval=0.05, what="NameConflict")
    message = condition(obj, "Degraded")["message"]
    assert f"Service {deployment_name(EP, 'green')} already exists" in message
    assert "has no controller" in message
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Stalled")["status"] == "True"
    # Nothing of the endpoint was written, the user's objects are exactly as they were.
    assert kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), namespace) is None
    after = [fingerprint(kube.get("v1", o["kind"], o["metadata"]["name"], namespace)) for o in mine]
    assert after == before

    # The user frees the name (renames their Service); the next pass serves the endpoint.
    kube.delete("v1", "Service", deployment_name(EP, "green"), namespace)
    kube.patch(API_VERSION, "OnlineEndpoint", EP,
               {"spec": {"traffic": {"blue": 50, "green": 50}}}, namespace)  # fmt: skip
    ready = wait_endpoint_ready(kube, namespace, EP)
    assert condition(ready, "Stalled")["status"] == "False"
    secret = kube.get("v1", "Secret", f"{EP}-keys", namespace)
    assert fingerprint(secret) == before[0]
    ours = kube.get("v1", "Secret", keys_secret_name(EP), namespace)
    assert ours is not None and ours["metadata"]["ownerReferences"][0]["name"] == EP
    # What the operator created is its create's (one POST, no field handover since: the
    # manifest it was created from, its digest live, has not changed).
    blue = kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), namespace)
    assert blue is not None
    entries = {(m["manager"], m["operation"]) for m in blue["metadata"]["managedFields"]
               if m["manager"] == FIELD_MANAGER and not m.get("subresource")}  # fmt: skip
    assert entries == {(FIELD_MANAGER, "Update")}
    assert blue["metadata"]["annotations"][MANIFEST_DIGEST]

    # Deleting the endpoint deletes its children, never the user's Secret.
    kube.delete(API_VERSION, "OnlineEndpoint", EP, namespace)
    wait_for(lambda: kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) is None,
             timeout=20, interval=0.05, what="endpoint deleted")  # fmt: skip
    # No finalizer holds the endpoint: its children go just after it (DELETED event, GC).
    wait_for(lambda: kube.get("v1", "Secret", keys_secret_name(EP), namespace) is None,
             timeout=20, interval=0.05, what="keys Secret deleted")  # fmt: skip
    assert fingerprint(kube.get("v1", "Secret", f"{EP}-keys", namespace)) == before[0]


def test_endpoint_fraud_v2_and_deployment_v2_of_endpoint_fraud_coexist(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    one = {"deployments": [{"name": "v2", "model": "credit-risk-v3"}], "traffic": {"v2": 100}}
    other = {"deployments": [{"name": "x", "model": "credit-risk-v4"}], "traffic": {"x": 100}}
    kube.create(endpoint_object("fraud", namespace, one))
    kube.create(endpoint_object("fraud-v2", namespace, other))
    wait_endpoint_ready(kube, namespace, "fraud")
    fraud_v2 = wait_endpoint_ready(kube, namespace, "fraud-v2")
    service = kube.get("v1", "Service", "fraud-v2", namespace)
    assert service is not None
    assert service["metadata"]["ownerReferences"][0]["uid"] == fraud_v2["metadata"]["uid"]
    # Deleting `fraud` removes its own v2 Service, not the other endpoint's.
    kube.delete(API_VERSION, "OnlineEndpoint", "fraud", namespace)
    wait_for(lambda: kube.get("v1", "Service", deployment_name("fraud", "v2"), namespace) is None,
             timeout=20, interval=0.05, what="fraud's children deleted")  # fmt: skip
    still = kube.get("v1", "Service", "fraud-v2", namespace)
    assert still is not None and still["metadata"]["uid"] == service["metadata"]["uid"]
    wait_endpoint_ready(kube, namespace, "fraud-v2")
