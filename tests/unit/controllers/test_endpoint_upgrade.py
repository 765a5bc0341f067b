"""Upgrading from the operator before hashed child names (`credit-keys`, `credit-blue`, ...):
the API keys carry over, the old children serve until the new Deployments are Available and
are pruned then, and an object with such a name that the endpoint does not control is never
read for keys, modified or deleted."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.names import (
    EndpointRef,
    child_labels,
    deployment_name,
    keys_secret_name,
    owner_reference,
    router_name,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import endpoint as controller
from support.cluster_objects import NOW, NS, endpoint_obj
from support.fake_kube import FakeKube, Key

KEY_AUTH = {"auth": {"mode": "key"}}
OLD_KEYS = "client-key-one\nclient-key-two\n"
# (apiVersion, kind, name, component, deployment) as the operator before hashed names made them
LEGACY = [
    ("v1", "Secret", "credit-keys", "keys", None),
    ("v1", "ConfigMap", "credit-router", "router", None),
    ("apps/v1", "Deployment", "credit-router", "router", None),
    ("apps/v1", "Deployment", "credit-blue", "model-server", "blue"),
    ("apps/v1", "Deployment", "credit-green", "model-server", "green"),
    ("v1", "Service", "credit-blue", "model-server", "blue"),
    ("v1", "Service", "credit-green", "model-server", "green"),
    ("policy/v1", "PodDisruptionBudget", "credit-router", "router", None),
]


def legacy_child(
    api_version: str, kind: str, name: str, component: str, deployment: str | None, uid: str | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "labels": child_labels("credit", component, deployment),
    }
    if uid is not None:
        meta["ownerReferences"] = [owner_reference(EndpointRef("credit", NS, uid))]
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    if kind == "Secret":
        obj["data"] = {"keys": base64.b64encode(OLD_KEYS.encode()).decode()}
    return obj


def old_operator_children(fake: FakeKube, uid: str | None) -> list[Key]:
    """What the operator before hashed names left behind for endpoint `credit`."""
    for spec in LEGACY:
        fake.put(legacy_child(*spec, uid=uid))
    return [(a, k, NS, n) for a, k, n, _, _ in LEGACY]


def make_available(fake: FakeKube, *names: str) -> None:
    """The Deployment controller reports these Deployments Available at their generation."""

    def done(obj: dict[str, Any]) -> None:
        want = int(obj["spec"].get("replicas", 1))
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": want,
            "availableReplicas": want,
            "conditions": [{"type": "Available", "status": "True"}],
        }

    for name in names:
        fake.mutate(("apps/v1", "Deployment", NS, name), done)


NEW_DEPLOYMENTS = (
    router_name("credit"),
    deployment_name("credit", "blue"),
    deployment_name("credit", "green"),
)


@pytest.fixture
def endpoint_uid(fake: FakeKube) -> str:
    return str(fake.put(endpoint_obj(**KEY_AUTH))["metadata"]["uid"])


def reconcile(fake: FakeKube, config: OperatorConfig) -> controller.Outcome:
    return controller.reconcile(fake, config, NS, "credit", NOW)


def test_the_new_keys_secret_keeps_the_keys_of_the_old_one(
    fake: FakeKube, config: OperatorConfig, endpoint_uid: str
) -> None:
    old_operator_children(fake, endpoint_uid)
    reconcile(fake, config)
    new = fake.get("v1", "Secret", keys_secret_name("credit"), NS)
    assert read_keys(new) == ["client-key-one", "client-key-two"]


def test_old_children_serve_until_the_new_deployments_are_available_then_go(
    fake: FakeKube, config: OperatorConfig, endpoint_uid: str
) -> None:
    legacy = old_operator_children(fake, endpoint_uid)
    outcome = reconcile(fake, config)
    assert all(key in fake.objects for key in legacy)  # nothing deleted before the new pods
    assert outcome.retry_message is not None and "credit-blue" in outcome.retry_message
    make_available(fake, *NEW_DEPLOYMENTS[:2])  # green still starting
    reconcile(fake, config)
    assert all(key in fake.objects for key in legacy)
    make_available(fake, NEW_DEPLOYMENTS[2])
    outcome = reconcile(fake, config)
    assert [key for key in legacy if key in fake.objects] == []
    assert outcome.retry_message is None
    for name in NEW_DEPLOYMENTS:
        assert ("apps/v1", "Deployment", NS, name) in fake.objects


def test_a_deleted_endpoint_releases_its_old_keys_secret(
    fake: FakeKube, config: OperatorConfig, endpoint_uid: str
) -> None:
    old_operator_children(fake, endpoint_uid)
    reconcile(fake, config)
    controller.release(fake, NS, "credit", endpoint_uid)
    assert fake.get("v1", "Secret", "credit-keys", NS) is None
    assert fake.get("v1", "Secret", keys_secret_name("credit"), NS) is None


@pytest.mark.parametrize("controller_uid", [None, "uid-of-another-endpoint"])
def test_old_names_the_endpoint_does_not_control_are_never_touched(
    fake: FakeKube, config: OperatorConfig, endpoint_uid: str, controller_uid: str | None
) -> None:
    legacy = old_operator_children(fake, controller_uid)
    before = {key: fake.objects[key] for key in legacy}
    reconcile(fake, config)
    assert read_keys(fake.get("v1", "Secret", keys_secret_name("credit"), NS)) != [
        "client-key-one",
        "client-key-two",
    ]
    make_available(fake, *NEW_DEPLOYMENTS)
    outcome = reconcile(fake, config)
    assert outcome.retry_message is None  # nothing of ours is waiting
    controller.release(fake, NS, "credit", endpoint_uid)
    assert {key: fake.objects.get(key) for key in legacy} == before
    touched = {key for _, key in fake.writes}
    assert touched.isdisjoint(legacy)
