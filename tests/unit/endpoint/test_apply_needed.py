"""An apply is skipped only when it certainly changes nothing (reconcile/apply_needed.py)."""

from __future__ import annotations

import copy
from typing import Any

from mlkube.contract import FIELD_MANAGER
from mlkube.reconcile.apply_needed import (
    MANIFEST_DIGEST,
    apply_needed,
    hand_over_first,
    is_subset,
    manifest_digest,
    owned_within,
    same_status,
    with_manifest_digest,
)

MANIFEST: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "credit-blue", "namespace": "ml", "labels": {"app": "credit"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "server", "image": "img:1", "ports": [{"containerPort": 8080}]}
                ]
            }
        },
    },
}

# What the API server records for our apply of MANIFEST (port protocol defaulted into the key).
FIELDS: dict[str, Any] = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:template": {
            "f:spec": {
                "f:containers": {
                    'k:{"name":"server"}': {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {
                            'k:{"containerPort":8080,"protocol":"TCP"}': {
                                ".": {},
                                "f:containerPort": {},
                            }
                        },
                    }
                }
            }
        },
    },
}


def live(fields: dict[str, Any] | None = None, operation: str = "Apply") -> dict[str, Any]:
    """MANIFEST as the API server returns it: defaults and other managers' fields added."""
    obj = copy.deepcopy(MANIFEST)
    obj["metadata"].update(uid="u1", resourceVersion="7", annotations={"other": "x"})
    obj["metadata"]["managedFields"] = [
        {"manager": FIELD_MANAGER, "operation": operation, "fieldsV1": fields or FIELDS},
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
         "fieldsV1": {"f:status": {}}},
    ]  # fmt: skip
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    container["ports"][0]["protocol"] = "TCP"
    obj["status"] = {"replicas": 2}
    return obj


def test_an_unchanged_child_needs_no_apply() -> None:
    assert not apply_needed(MANIFEST, live())


def test_a_value_edited_by_hand_is_applied_back() -> None:
    edited = live()
    edited["spec"]["replicas"] = 5
    assert apply_needed(MANIFEST, edited)
    edited = live()
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "img:hacked"
    assert apply_needed(MANIFEST, edited)


def test_a_field_removed_by_hand_is_applied_back() -> None:
    edited = live()
    del edited["metadata"]["labels"]["app"]
    assert apply_needed(MANIFEST, edited)


def test_a_field_the_manifest_dropped_but_we_own_is_applied_away() -> None:
    fields = copy.deepcopy(FIELDS)
    fields["f:metadata"]["f:labels"]["f:tier"] = {}  # applied by an older pass
    obj = live(fields)
    obj["metadata"]["labels"]["tier"] = "gold"
    assert apply_needed(MANIFEST, obj)


def test_an_extra_list_item_means_apply() -> None:
    obj = live()
    obj["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s"})
    assert apply_needed(MANIFEST, obj)


def test_unknown_ownership_means_apply() -> None:
    obj = live()
    del obj["metadata"]["managedFields"]
    assert apply_needed(MANIFEST, obj)
    assert apply_needed(MANIFEST, None)


def test_subset_is_strict_about_types_and_lengths() -> None:
    assert is_subset({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2], "c": 3}, "d": 4})
    assert not is_subset({"a": True}, {"a": 1})
    assert not is_subset({"a": [1]}, {"a": [1, 2]})
    assert not is_subset({"a": "1"}, {"a": 1})


def test_ownership_walks_keys_values_and_indexes() -> None:
    desired = {"l": ["x"], "items": [{"name": "a", "v": 1}], "i": [0, 1]}
    assert owned_within({"f:l": {'v:"x"': {}}, "f:i": {"i:1": {}}}, desired)
    assert not owned_within({"f:l": {'v:"y"': {}}}, desired)
    assert not owned_within({"f:i": {"i:2": {}}}, desired)
    assert owned_within({"f:items": {'k:{"name":"a"}': {"f:v": {}}}}, desired)
    assert not owned_within({"f:items": {'k:{"name":"b"}': {}}}, desired)
    assert not owned_within({"f:items": {'k:{"name":"a"}': {"f:w": {}}}}, desired)
    assert not owned_within({"x:odd": {}}, desired)


def test_status_compares_as_the_api_server_stores_it() -> None:
    built = {"ratio": 0.0, "n": 1, "ok": True, "items": [{"a": 1}]}
    assert same_status(built, {"ratio": 0, "n": 1.0, "ok": True, "items": [{"a": 1, "d": 0}]})
    assert not same_status(built, {**built, "ratio": 0.5})
    assert not same_status(built, {**built, "ok": 1})
    assert not same_status(built, {**built, "stale": "left over"})  # a dropped field: write
    assert not same_status(built, {**built, "items": [{"a": 1}, {"a": 2}]})


def test_a_list_item_without_kind_and_api_version_is_compared_by_its_fields() -> None:
    item = live()
    del item["apiVersion"], item["kind"]
    assert not apply_needed(MANIFEST, item)


# What a POST of MANIFEST leaves: our Update entry owns the manifest and the server's defaults.
CREATED: dict[str, Any] = copy.deepcopy(FIELDS)
CREATED["f:spec"]["f:template"]["f:spec"]["f:dnsPolicy"] = {}
CREATED["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"server"}'].update(
    {"f:imagePullPolicy": {}, "f:terminationMessagePath": {}}
)


def created(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` as one POST leaves it: its digest live, the create's Update entry only."""
    obj = live(CREATED, operation="Update")
    obj["metadata"]["annotations"] = {**manifest["metadata"]["annotations"], "other": "x"}
    obj["spec"] = {**copy.deepcopy(manifest["spec"]), "progressDeadlineSeconds": 600}
    obj["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    return obj


def test_a_child_created_from_this_very_manifest_needs_no_write() -> None:
    """Create, then any number of passes (resync, restart): the POST was the only write, though
    the create's entry owns the server's defaults, which the manifest lacks."""
    manifest = with_manifest_digest(MANIFEST)
    obj = created(manifest)
    assert not owned_within(CREATED, manifest)
    assert not apply_needed(manifest, obj)
    assert not hand_over_first(manifest, obj)


def test_a_field_the_manifest_dropped_since_the_create_is_handed_over_and_applied_away() -> None:
    old = copy.deepcopy(MANIFEST)
    old["metadata"]["labels"]["tier"] = "gold"
    obj = created(with_manifest_digest(old))
    obj["metadata"]["labels"]["tier"] = "gold"
    obj["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:labels"]["f:tier"] = {}
    new = with_manifest_digest(MANIFEST)
    assert apply_needed(new, obj)
    assert hand_over_first(new, obj)  # else the Update entry would keep `tier` live


def test_a_changed_value_needs_an_apply_and_a_hand_over_only_for_fields_beyond_it() -> None:
    changed = copy.deepcopy(MANIFEST)
    changed["spec"]["replicas"] = 3
    obj = created(with_manifest_digest(MANIFEST))
    new = with_manifest_digest(changed)
    assert apply_needed(new, obj) and hand_over_first(new, obj)  # defaults or a dropped field?
    obj["metadata"]["managedFields"][0]["fieldsV1"] = FIELDS  # a ConfigMap: no defaults
    assert apply_needed(new, obj) and not hand_over_first(new, obj)


def test_a_hand_edit_of_a_created_child_is_applied_back_without_a_hand_over() -> None:
    manifest = with_manifest_digest(MANIFEST)
    obj = created(manifest)
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "img:hacked"
    assert apply_needed(manifest, obj) and not hand_over_first(manifest, obj)
    del obj["metadata"]["annotations"][MANIFEST_DIGEST]  # the digest itself removed by hand
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "img:1"
    assert apply_needed(manifest, obj) and hand_over_first(manifest, obj)


def test_a_child_the_previous_version_applied_is_not_rewritten_for_the_digest() -> None:
    """Children of an operator without digests (an apply entry only, no annotation): the
    upgraded operator's first pass writes nothing; a real change still applies."""
    manifest = with_manifest_digest(MANIFEST)
    assert not apply_needed(manifest, live())
    edited = live()
    edited["spec"]["replicas"] = 5
    assert apply_needed(manifest, edited)


def test_the_manifest_digest_is_stable_and_leaves_out_itself() -> None:
    reordered = {"spec": MANIFEST["spec"], "metadata": MANIFEST["metadata"], "kind": "Deployment",
                 "apiVersion": "apps/v1"}  # fmt: skip
    assert manifest_digest(reordered) == manifest_digest(MANIFEST)
    stamped = with_manifest_digest(MANIFEST)
    assert "annotations" not in MANIFEST["metadata"]  # the input is not modified
    assert stamped["metadata"]["annotations"] == {MANIFEST_DIGEST: manifest_digest(MANIFEST)}
    assert manifest_digest(stamped) == manifest_digest(MANIFEST)
    changed = copy.deepcopy(MANIFEST)
    changed["spec"]["replicas"] = 3
    assert manifest_digest(changed) != manifest_digest(MANIFEST)
