"""Children never collide across endpoints, objects the endpoint does not control are never
modified or deleted (NameConflict instead), and the keys Secret is the user's once created."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mlkube.builders.names import EndpointRef, deployment_name, keys_secret_name, router_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.controllers import endpoint as controller
from mlkube.controllers.endpoint_ownership import write_children
from mlkube.controllers.kube import ApiError
from mlkube.reconcile.apply_needed import MANIFEST_DIGEST, with_manifest_digest
from support.cluster_objects import NOW, NS, endpoint_obj
from support.fake_kube import FakeKube, Key

KEY_AUTH = {"auth": {"mode": "key"}}


def reconcile(fake: FakeKube, config: OperatorConfig, name: str) -> controller.Outcome:
    return controller.reconcile(fake, config, NS, name, NOW)


def endpoint_status(fake: FakeKube, name: str) -> dict[str, Any]:
    return fake.stored(API_VERSION, "OnlineEndpoint", name, NS)["status"]


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def controller_uid(fake: FakeKube, kind: str, name: str) -> str:
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    refs = fake.stored(api_version, kind, name, NS)["metadata"]["ownerReferences"]
    return str(next(r["uid"] for r in refs if r.get("controller")))


def user_secret(name: str, text: str = "user-owned\n") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {"keys": base64.b64encode(text.encode()).decode()},
    }


def test_endpoint_fraud_v2_and_deployment_v2_of_fraud_get_different_services(
    fake: FakeKube, config: OperatorConfig
) -> None:
    fraud = fake.put(endpoint_obj("fraud", deployments=[
        {"name": "v2", "model": "credit-risk-v3"}], traffic={"v2": 100}))  # fmt: skip
    fraud_v2 = fake.put(endpoint_obj("fraud-v2", deployments=[
        {"name": "x", "model": "credit-risk-v4"}], traffic={"x": 100}))  # fmt: skip
    reconcile(fake, config, "fraud")
    reconcile(fake, config, "fraud-v2")
    reconcile(fake, config, "fraud")  # the order does not matter: nobody takes the other's
    assert controller_uid(fake, "Service", "fraud-v2") == fraud_v2["metadata"]["uid"]
    assert (
        controller_uid(fake, "Service", deployment_name("fraud", "v2"))
        == (fraud["metadata"]["uid"])
    )
    for name in ("fraud", "fraud-v2"):
        assert condition(endpoint_status(fake, name), "Degraded")["status"] == "False"
    controller.release(fake, NS, "fraud", fraud["metadata"]["uid"])
    assert fake.get("v1", "Service", "fraud-v2", NS) is not None  # fraud-v2's, untouched


def test_a_taken_name_is_a_name_conflict_and_nothing_is_written(
    fake: FakeKube, config: OperatorConfig
) -> None:
    taken = deployment_name("credit", "blue")
    user = fake.put({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": taken, "namespace": NS},
                     "spec": {"ports": [{"port": 5432}]}})  # fmt: skip
    endpoint = fake.put(endpoint_obj())
    writes_before = len(fake.writes)
    outcome = reconcile(fake, config, "credit")
    assert outcome.retry_message is None  # a human fixes it; the resync loop looks again
    # the only write is the endpoint's own status: no child was created or changed
    assert {(verb, key[1]) for verb, key in fake.writes[writes_before:]} <= {
        ("patch/status", "Model"), ("patch/status", "OnlineEndpoint")}  # fmt: skip
    assert fake.stored("v1", "Service", taken, NS) == user
    status = endpoint_status(fake, "credit")
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "NameConflict")
    assert f"Service {taken} already exists and has no controller" in degraded["message"]
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Stalled")["status"] == "True"  # kstatus: Failed, not InProgress
    assert controller.endpoints_waiting_for(fake, NS, "credit-risk-v3") == ["credit"]
    controller.release(fake, NS, "credit", endpoint["metadata"]["uid"])
    assert fake.stored("v1", "Service", taken, NS) == user  # not deleted either

    fake.delete("v1", "Service", taken, NS)  # the human frees the name
    reconcile(fake, config, "credit")
    status = endpoint_status(fake, "credit")
    assert condition(status, "Degraded")["status"] == "False"
    assert condition(status, "Stalled")["status"] == "False"


def test_another_endpoints_object_is_named_in_the_conflict(
    fake: FakeKube, config: OperatorConfig
) -> None:
    other = fake.put(endpoint_obj("other"))
    ref = {"apiVersion": API_VERSION, "kind": "OnlineEndpoint", "name": "other",
           "uid": other["metadata"]["uid"], "controller": True}  # fmt: skip
    fake.put({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": router_name("credit"), "namespace": NS,
                           "ownerReferences": [ref]}})  # fmt: skip
    fake.put(endpoint_obj())
    reconcile(fake, config, "credit")
    message = condition(endpoint_status(fake, "credit"), "Degraded")["message"]
    assert f"ConfigMap {router_name('credit')} already exists and is controlled by " in message
    assert "OnlineEndpoint other" in message


def test_a_name_taken_between_read_and_create_is_a_conflict_not_a_takeover(
    fake: FakeKube, config: OperatorConfig
) -> None:
    fake.put(endpoint_obj())
    target = deployment_name("credit", "green")

    def squat(verb: str, key: Key) -> None:
        if verb == "create" and key[3] == target and key[1] == "Deployment":
            fake.before.remove(squat)
            meta = {"name": target, "namespace": NS}
            fake.put({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                      "spec": {"replicas": 7}})  # fmt: skip

    fake.before.append(squat)
    reconcile(fake, config, "credit")
    assert fake.stored("apps/v1", "Deployment", target, NS)["spec"] == {"replicas": 7}
    assert condition(endpoint_status(fake, "credit"), "Degraded")["reason"] == "NameConflict"


def test_a_child_replaced_between_read_and_apply_is_not_overwritten(
    fake: FakeKube, config: OperatorConfig
) -> None:
    fake.put(endpoint_obj())
    reconcile(fake, config, "credit")
    target = router_name("credit")
    replaced = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": target, "namespace": NS}, "data": {"mine": "yes"}}  # fmt: skip

    def replace(verb: str, key: Key) -> None:
        if verb == "apply" and key[3] == target:
            fake.before.remove(replace)
            del fake.objects[key]
            fake.put(dict(replaced))

    fake.before.append(replace)
    with pytest.raises(ApiError) as err:
        reconcile(fake, config, "credit")
    assert err.value.status == 409  # the handler retries; the next pass reports NameConflict
    assert fake.stored("v1", "ConfigMap", target, NS)["data"] == {"mine": "yes"}
    reconcile(fake, config, "credit")
    assert condition(endpoint_status(fake, "credit"), "Degraded")["reason"] == "NameConflict"


def test_a_users_secret_next_to_a_key_auth_endpoint_is_never_adopted(
    fake: FakeKube, config: OperatorConfig
) -> None:
    user = fake.put(user_secret("aws-keys"))
    aws = fake.put(endpoint_obj("aws", **KEY_AUTH))
    reconcile(fake, config, "aws")
    reconcile(fake, config, "aws")
    assert fake.stored("v1", "Secret", "aws-keys", NS) == user
    assert fake.get("v1", "Secret", keys_secret_name("aws"), NS) is not None
    controller.release(fake, NS, "aws", aws["metadata"]["uid"])
    assert fake.stored("v1", "Secret", "aws-keys", NS) == user
    assert fake.get("v1", "Secret", keys_secret_name("aws"), NS) is None


def test_a_users_secret_at_the_keys_name_is_a_conflict(
    fake: FakeKube, config: OperatorConfig
) -> None:
    user = fake.put(user_secret(keys_secret_name("aws")))
    fake.put(endpoint_obj("aws", **KEY_AUTH))
    reconcile(fake, config, "aws")
    assert fake.stored("v1", "Secret", keys_secret_name("aws"), NS) == user
    assert condition(endpoint_status(fake, "aws"), "Degraded")["reason"] == "NameConflict"


def secret_keys(fake: FakeKube, endpoint: str) -> str:
    secret = fake.stored("v1", "Secret", keys_secret_name(endpoint), NS)
    return base64.b64decode(secret["data"]["keys"]).decode()


def test_a_key_rotated_while_a_reconcile_runs_is_kept(
    fake: FakeKube, config: OperatorConfig
) -> None:
    fake.put(endpoint_obj(**KEY_AUTH))
    reconcile(fake, config, "credit")
    first = secret_keys(fake, "credit")
    secret: Key = ("v1", "Secret", NS, keys_secret_name("credit"))
    rotated = base64.b64encode(b"rotated-key\n").decode()
    seen = [False]

    def rotate_after_the_read(verb: str, key: Key) -> None:
        # The user rotates the key right after the operator read the Secret.
        if seen[0]:
            fake.before.remove(rotate_after_the_read)
            fake.mutate(secret, lambda obj: obj.update({"data": {"keys": rotated}}))
        elif verb == "get" and key == secret:
            seen[0] = True

    fake.before.append(rotate_after_the_read)
    reconcile(fake, config, "credit")
    assert seen == [True] and rotate_after_the_read not in fake.before
    assert secret_keys(fake, "credit") == "rotated-key\n" != first
    reconcile(fake, config, "credit")  # and later passes keep it too
    assert secret_keys(fake, "credit") == "rotated-key\n"


def test_a_child_deleted_between_read_and_apply_is_not_recreated_by_the_apply(
    fake: FakeKube, config: OperatorConfig
) -> None:
    fake.put(endpoint_obj())
    reconcile(fake, config, "credit")
    target = router_name("credit")

    def vanish(verb: str, key: Key) -> None:
        if verb == "apply" and key[3] == target:
            fake.before.remove(vanish)
            del fake.objects[key]

    fake.before.append(vanish)
    with pytest.raises(ApiError) as err:
        reconcile(fake, config, "credit")
    assert err.value.status == 409  # the retry creates it again, through the create path
    reconcile(fake, config, "credit")
    assert fake.get("v1", "ConfigMap", target, NS) is not None


def test_the_creates_field_ownership_is_handed_over_before_an_apply_that_may_drop_fields(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """A child created from another manifest (its digest differs) whose create entry owns a
    field the manifest lacks: that entry becomes our apply's, then the apply drops the field."""
    fake.put(endpoint_obj())
    reconcile(fake, config, "credit")
    key: Key = ("v1", "ConfigMap", NS, router_name("credit"))
    entry = {"manager": "mlkube-operator", "apiVersion": "v1", "fieldsType": "FieldsV1"}
    managed = [
        {**entry, "operation": "Update", "fieldsV1": {"f:data": {"f:old": {}}}},
        {**entry, "operation": "Apply", "fieldsV1": {"f:data": {"f:config.json": {}}}},
        {**entry, "manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:x": {}}},
        {**entry, "operation": "Update", "subresource": "status", "fieldsV1": {}},
    ]

    def created_from_an_older_manifest(obj: dict[str, Any]) -> None:
        obj["metadata"].update(managedFields=managed)
        obj["metadata"]["annotations"][MANIFEST_DIGEST] = "older"
        obj["data"]["old"] = "dropped since"

    fake.mutate(key, created_from_an_older_manifest)

    def status_moves_once(verb: str, seen: Key) -> None:
        # Another writer changes the object just before the rewrite: a 409, read again, retry.
        if verb == "patch" and seen == key:
            fake.before.remove(status_moves_once)
            fake.mutate(key, lambda obj: obj.update(status={"moved": True}))

    fake.before.append(status_moves_once)
    writes = len(fake.writes)
    reconcile(fake, config, "credit")
    assert status_moves_once not in fake.before
    assert [verb for verb, k in fake.writes[writes:] if k == key] == ["patch", "apply"]
    got = fake.objects[key]["metadata"]["managedFields"]
    assert got == [
        {**entry, "operation": "Apply",
         "fieldsV1": {"f:data": {"f:config.json": {}, "f:old": {}}}},  # the apply drops `old`
        managed[2],  # other managers and our status writes stay as they are
        managed[3],
    ]  # fmt: skip


def fields_of(obj: Any) -> dict[str, Any]:
    """A FieldsV1 set naming every map field of `obj` (lists count as single fields)."""
    if not isinstance(obj, dict):
        return {}
    skip = ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "managedFields")
    return {f"f:{k}": fields_of(v) for k, v in obj.items() if k not in skip}


class ManagedFieldsKube(FakeKube):
    """Records field ownership as the API server does: a create's (operation Update, with what
    the server defaulted: a Deployment's dnsPolicy) and an apply's (exactly its manifest)."""

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        super().create(obj, field_manager)
        key = (obj["apiVersion"], obj["kind"], NS, obj["metadata"]["name"])

        def defaulted(stored: dict[str, Any]) -> None:
            if stored["kind"] == "Deployment":
                stored["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
            entry = {"manager": field_manager, "operation": "Update", "fieldsV1": fields_of(stored)}
            stored["metadata"]["managedFields"] = [entry]

        self.mutate(key, defaulted)
        return self.stored(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], NS)

    def apply(
        self, obj: dict[str, Any], field_manager: str = "mlkube-operator", subresource: str = ""
    ) -> dict[str, Any]:
        super().apply(obj, field_manager, subresource)
        key = (obj["apiVersion"], obj["kind"], NS, obj["metadata"]["name"])

        def owned(stored: dict[str, Any]) -> None:
            entries = stored["metadata"].get("managedFields") or []
            rest = [
                e for e in entries if (e["manager"], e["operation"]) != (field_manager, "Apply")
            ]
            entry = {"manager": field_manager, "operation": "Apply", "fieldsV1": fields_of(obj)}
            stored["metadata"]["managedFields"] = [*rest, entry]

        self.mutate(key, owned)
        return self.stored(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], NS)


def test_a_child_is_created_with_one_write_and_the_keys_secret_is_never_patched(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """One POST per child, its create entry left as it is, and the next pass writes no child.
    Create-only: no field-ownership handover either, so the operator needs no Secret patch
    right (builders/rbac.py)."""
    managed = ManagedFieldsKube(objects=fake.objects)
    managed.put(endpoint_obj(**KEY_AUTH))
    reconcile(managed, config, "credit")
    reconcile(managed, config, "credit")
    secret = ("v1", "Secret", NS, keys_secret_name("credit"))
    assert [verb for verb, key in managed.writes if key == secret] == ["create"]
    children = {key for verb, key in managed.writes if verb == "create"}
    assert ("apps/v1", "Deployment", NS, deployment_name("credit", "blue")) in children
    for child in children:
        assert [verb for verb, key in managed.writes if key == child] == ["create"]


def test_a_field_dropped_from_a_created_childs_manifest_is_handed_over_and_applied_away(
    fake: FakeKube,
) -> None:
    """A changed manifest (a data key dropped) costs the hand-over and the apply, once; the
    pass after that writes nothing again."""
    managed = ManagedFieldsKube(objects=fake.objects)
    endpoint = managed.put(endpoint_obj())
    owner = EndpointRef("credit", NS, endpoint["metadata"]["uid"])
    ref = {"apiVersion": API_VERSION, "kind": "OnlineEndpoint", "name": "credit",
           "uid": owner.uid, "controller": True}  # fmt: skip

    def config_map(data: dict[str, str]) -> dict[str, Any]:
        meta = {"name": "credit-extra", "namespace": NS, "ownerReferences": [ref]}
        return with_manifest_digest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                                     "data": data})  # fmt: skip

    key: Key = ("v1", "ConfigMap", NS, "credit-extra")

    def writes_of(children: list[dict[str, Any]]) -> list[str]:
        before = len(managed.writes)
        assert write_children(managed, owner, children) == []
        return [verb for verb, k in managed.writes[before:] if k == key]

    assert writes_of([config_map({"a": "1", "b": "2"})]) == ["create"]
    assert writes_of([config_map({"a": "1", "b": "2"})]) == []
    assert writes_of([config_map({"a": "1"})]) == ["patch", "apply"]
    assert managed.stored("v1", "ConfigMap", "credit-extra", NS)["data"] == {"a": "1"}
    assert writes_of([config_map({"a": "1"})]) == []
    assert writes_of([config_map({"a": "2"})]) == ["apply"]  # handed over already
