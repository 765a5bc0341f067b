"""A child costs one write to create and none after, yet a field its manifest drops is removed
(issue 15), on the real API server, whose field ownership decides both.

One POST leaves our manager an Update entry in managedFields (with the server's defaults);
fields owned by it would survive an apply that drops them. `endpoint_ownership.write_children`
leaves it until a manifest really changes, then hands it over and applies. The witness is
every write `write_children` sends, and the live objects.
"""

from __future__ import annotations

import copy
from typing import Any

from mlkube.builders.names import EndpointRef
from mlkube.controllers.endpoint_ownership import write_children
from mlkube.k8s import Kube
from mlkube.reconcile.apply_needed import with_manifest_digest


class Writes:
    """A Kube that records (verb, kind) of each write it passes on."""

    def __init__(self, inner: Kube) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        self.seen.append(("create", obj["kind"]))
        return self.inner.create(obj, field_manager)

    def apply(self, obj: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.seen.append(("apply", obj["kind"]))
        return self.inner.apply(obj, *args, **kwargs)

    def patch(self, api_version: str, kind: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.seen.append(("patch", kind))
        return self.inner.patch(api_version, kind, *args, **kwargs)

    def pass_(self, owner: EndpointRef, children: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """One write_children pass; the kinds of writes it made (a hand-over patch is retried
        when a Deployment's status moved since the read: 409, read again)."""
        self.seen = []
        assert write_children(self, owner, children) == []  # type: ignore[arg-type]
        return sorted(set(self.seen))


def owner_of(kube: Kube, namespace: str) -> tuple[EndpointRef, dict[str, Any]]:
    """An owner object (the garbage collector needs it to exist) and its controller reference."""
    obj = kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "owner", "namespace": namespace}})  # fmt: skip
    uid = obj["metadata"]["uid"]
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
           "controller": True}  # fmt: skip
    return EndpointRef("owner", namespace, uid), ref


def deployment(namespace: str, ref: dict[str, Any], extra: bool) -> dict[str, Any]:
    labels = {"app": "child", **({"tier": "gold"} if extra else {})}
    env = [{"name": "A", "value": "1"}] + ([{"name": "FOO", "value": "bar"}] if extra else [])
    container = {"name": "server", "image": "example.invalid/server:1", "env": env,
                 "ports": [{"containerPort": 8080}]}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "child", "namespace": namespace, "labels": labels,
                     "ownerReferences": [ref]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "child"}},
            "template": {"metadata": {"labels": {"app": "child"}},
                         "spec": {"containers": [container]}},
        },
    }  # fmt: skip


def config_map(namespace: str, ref: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    meta = {"name": "child", "namespace": namespace, "ownerReferences": [ref]}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def test_a_child_is_one_write_and_a_dropped_field_still_goes(kube: Kube, namespace: str) -> None:
    writes = Writes(kube)
    owner, ref = owner_of(kube, namespace)

    def children(extra: bool, value: str = "1") -> list[dict[str, Any]]:
        data = {"a": value, **({"b": "2"} if extra else {})}
        built = [config_map(namespace, ref, data), deployment(namespace, ref, extra)]
        return [with_manifest_digest(child) for child in built]

    assert writes.pass_(owner, children(True)) == [
        ("create", "ConfigMap"),
        ("create", "Deployment"),
    ]
    # Created from this very manifest: an idle pass (resync, restart) writes nothing, though
    # the create's entry owns the server's defaults too (dnsPolicy, a port's protocol...).
    assert writes.pass_(owner, children(True)) == []
    dep = kube.get("apps/v1", "Deployment", "child", namespace)
    assert dep is not None
    entries = [(e["manager"], e["operation"]) for e in dep["metadata"]["managedFields"]]
    assert ("mlkube-operator", "Update") in entries

    # The manifest drops a label, an env var and a data key: handed over, applied away.
    assert writes.pass_(owner, children(False)) == [
        ("apply", "ConfigMap"), ("apply", "Deployment"),
        ("patch", "ConfigMap"), ("patch", "Deployment"),
    ]  # fmt: skip
    dep = kube.get("apps/v1", "Deployment", "child", namespace)
    cm = kube.get("v1", "ConfigMap", "child", namespace)
    assert dep is not None and cm is not None
    assert cm["data"] == {"a": "1"}
    assert "tier" not in dep["metadata"]["labels"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert container["terminationMessagePath"]  # the server's defaults are back
    assert dep["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert writes.pass_(owner, children(False)) == []
    assert writes.pass_(owner, children(False, value="2")) == [("apply", "ConfigMap")]
    assert writes.pass_(owner, children(False, value="2")) == []


def test_a_hand_edit_of_a_created_child_is_undone_in_one_apply(kube: Kube, namespace: str) -> None:
    writes = Writes(kube)
    owner, ref = owner_of(kube, namespace)
    built = [with_manifest_digest(deployment(namespace, ref, extra=False))]
    assert writes.pass_(owner, built) == [("create", "Deployment")]
    edit = {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "image": "example.invalid/hacked:1"}]}}}}  # fmt: skip
    kube.patch("apps/v1", "Deployment", "child", edit, namespace, field_manager="kubectl-edit")
    assert writes.pass_(owner, built) == [("apply", "Deployment")]
    dep = kube.get("apps/v1", "Deployment", "child", namespace)
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example.invalid/server:1"
    assert writes.pass_(owner, built) == []


def test_children_the_previous_version_wrote_are_not_rewritten(kube: Kube, namespace: str) -> None:
    """The previous version left children an apply entry (its create's was adopted) and no
    digest: the upgraded operator's passes write nothing until a manifest really changes."""
    writes = Writes(kube)
    owner, ref = owner_of(kube, namespace)
    old = [config_map(namespace, ref, {"a": "1"}), deployment(namespace, ref, extra=False)]
    for child in old:
        kube.apply(copy.deepcopy(child))
    assert writes.pass_(owner, [with_manifest_digest(child) for child in old]) == []
    changed = [config_map(namespace, ref, {"a": "2"}), old[1]]
    assert writes.pass_(owner, [with_manifest_digest(child) for child in changed]) == [
        ("apply", "ConfigMap")
    ]
