"""An apply is skipped only when it certainly changes nothing (reconcile/apply_needed.py)."""

from __future__ import annotations

import copy
from typing import Any

from mlkube.contract import FIELD_MANAGER
from mlkube.reconcile.apply_needed import apply_needed, is_subset, owned_within, same_status

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


def test_a_create_not_yet_adopted_or_unknown_ownership_means_apply() -> None:
    assert apply_needed(MANIFEST, live(operation="Update"))
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


def test_restrict_fields_drops_defaults_a_create_owned() -> None:
    """A create's entry owns what the API server defaulted; restricted to the manifest, the
    adopted apply entry lets the next pass skip its no-op apply."""
    from mlkube.reconcile.apply_needed import owned_within, restrict_fields

    manifest = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"template": {"spec": {"containers": [{"name": "server", "image": "x"}]}}},
    }
    created = {
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
        "f:spec": {
            "f:progressDeadlineSeconds": {},
            "f:template": {
                "f:spec": {
                    "f:dnsPolicy": {},
                    "f:containers": {
                        'k:{"name":"server"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:terminationMessagePath": {},
                        }
                    },
                }
            },
        },
    }
    assert not owned_within(created, manifest)
    kept = restrict_fields(created, manifest)
    assert owned_within(kept, manifest)
    assert kept == {
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {'k:{"name":"server"}': {".": {}, "f:image": {}, "f:name": {}}}
                }
            }
        },
    }
