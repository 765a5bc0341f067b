"""`deployedBy` recomputed from the live endpoints: what keeps Models correct without an
endpoint finalizer (deletions while the operator was away, missed DELETED events)."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.contract import API_VERSION
from mlkube.controllers.endpoint_models import (
    GET_AT_MOST,
    repair_deployed_by,
    repaired_references,
)
from mlkube.controllers.endpoint_users import UsersIndex
from mlkube.controllers.errors import EndpointSyncError
from support.cluster_objects import NS, endpoint_obj
from support.counting_kube import CountingKube
from support.fake_kube import FakeKube, Key


def ref(name: str) -> dict[str, str]:
    return {"kind": "OnlineEndpoint", "name": name, "namespace": NS}


def model_key(name: str) -> Key:
    return (API_VERSION, "Model", NS, name)


def set_deployed_by(fake: FakeKube, model: str, names: list[str]) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["status"]["deployedBy"] = [ref(n) for n in names]

    fake.mutate(model_key(model), change)


def deployed_by(fake: FakeKube, model: str) -> list[str]:
    status = fake.stored(API_VERSION, "Model", model, NS).get("status") or {}
    return [r["name"] for r in status.get("deployedBy") or []]


def test_a_deleted_endpoint_is_dropped_and_live_users_stay(fake: FakeKube) -> None:
    fake.put(endpoint_obj("credit"))  # uses v3 and v4
    set_deployed_by(fake, "credit-risk-v3", ["credit", "gone"])
    set_deployed_by(fake, "credit-risk-v4", ["gone", "credit"])
    assert repair_deployed_by(fake, NS) == ["credit-risk-v3", "credit-risk-v4"]
    assert deployed_by(fake, "credit-risk-v3") == deployed_by(fake, "credit-risk-v4") == ["credit"]
    writes = len(fake.writes)
    assert repair_deployed_by(fake, NS) == []  # level reached: nothing written
    assert len(fake.writes) == writes


def test_an_endpoint_being_deleted_or_not_using_the_model_is_dropped(fake: FakeKube) -> None:
    deleting = endpoint_obj("deleting")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    fake.put(deleting)
    only_v4 = [{"name": "x", "model": "credit-risk-v4", "replicas": 1}]
    fake.put(endpoint_obj("moved", deployments=only_v4, traffic={"x": 100}))
    set_deployed_by(fake, "credit-risk-v3", ["deleting", "moved"])
    repair_deployed_by(fake, NS, "credit-risk-v3")
    assert deployed_by(fake, "credit-risk-v3") == []
    assert deployed_by(fake, "credit-risk-v4") == []  # only the named Model is repaired


def test_a_live_user_missing_from_deployed_by_is_added(fake: FakeKube) -> None:
    credit = fake.put(endpoint_obj("credit"))
    index = UsersIndex()
    repair_deployed_by(fake, NS, "credit-risk-v3", index)
    assert deployed_by(fake, "credit-risk-v3") == []  # not seen by the watches: not looked at
    index.observe("OnlineEndpoint", NS, "credit", credit)
    repair_deployed_by(fake, NS, "credit-risk-v3", index)
    assert deployed_by(fake, "credit-risk-v3") == ["credit"]
    assert repair_deployed_by(fake, NS, "credit-risk-v4") == []  # the named Model only


def test_one_model_s_check_gets_the_endpoints_it_names_instead_of_listing_them(
    fake: FakeKube,
) -> None:
    """At operator start every Model checks itself: N LISTs of N endpoints before."""
    only_v4 = [{"name": "x", "model": "credit-risk-v4", "replicas": 1}]
    for n in range(5):
        fake.put(endpoint_obj(f"other-{n}", deployments=only_v4, traffic={"x": 100}))
    fake.put(endpoint_obj("credit"))
    set_deployed_by(fake, "credit-risk-v3", ["credit", "gone"])
    counting = CountingKube(fake)
    assert repair_deployed_by(counting, NS, "credit-risk-v3", UsersIndex()) == ["credit-risk-v3"]
    assert deployed_by(fake, "credit-risk-v3") == ["credit"]
    assert counting.total("list") == 0
    assert counting.calls["get", "OnlineEndpoint"] == 2  # credit, gone


def test_a_model_named_by_many_endpoints_is_checked_with_one_list(fake: FakeKube) -> None:
    names = [f"e{n:02d}" for n in range(GET_AT_MOST + 1)]
    for name in names:
        fake.put(endpoint_obj(name))
    set_deployed_by(fake, "credit-risk-v3", [*names, "gone"])
    counting = CountingKube(fake)
    repair_deployed_by(counting, NS, "credit-risk-v3", UsersIndex())
    assert deployed_by(fake, "credit-risk-v3") == names
    assert counting.calls["get", "OnlineEndpoint"] == 0
    assert counting.calls["list", "OnlineEndpoint"] == 1


def test_the_index_follows_spec_changes_and_deletions() -> None:
    index = UsersIndex()
    index.observe("OnlineEndpoint", NS, "credit", endpoint_obj("credit"))
    index.observe("BatchEndpoint", NS, "nightly", endpoint_obj("nightly"))
    assert index.users(NS, "credit-risk-v3") == [
        ("BatchEndpoint", "nightly"),
        ("OnlineEndpoint", "credit"),
    ]
    only_v4 = [{"name": "x", "model": "credit-risk-v4", "replicas": 1}]
    moved = endpoint_obj("credit", deployments=only_v4, traffic={"x": 100})
    index.observe("OnlineEndpoint", NS, "credit", moved)
    assert index.users(NS, "credit-risk-v3") == [("BatchEndpoint", "nightly")]
    deleting = endpoint_obj("nightly")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    index.observe("BatchEndpoint", NS, "nightly", deleting)
    index.observe("OnlineEndpoint", NS, "credit", None)
    assert index.users(NS, "credit-risk-v3") == index.users(NS, "credit-risk-v4") == []
    assert index.users("elsewhere", "credit-risk-v4") == []


def test_references_of_other_kinds_and_the_order_are_kept() -> None:
    other = {"kind": "BatchJob", "name": "nightly", "namespace": NS}
    refs = [ref("b"), other, ref("gone"), ref("a")]
    assert repaired_references(refs, [ref("a"), ref("b"), ref("c")]) == [
        ref("b"), other, ref("a"), ref("c")]  # fmt: skip
    assert repaired_references([other, ref("a")], [ref("a")]) is None


def test_a_reference_added_after_the_read_is_not_lost(fake: FakeKube) -> None:
    """An endpoint created between our read of the Model and our write adds itself: the write
    conflicts, and the second pass (Model, then endpoints, read again) keeps it."""
    set_deployed_by(fake, "credit-risk-v3", ["gone"])
    raced = []

    def new_endpoint_adds_itself(verb: str, key: Key) -> None:
        if verb == "patch/status" and key == model_key("credit-risk-v3") and not raced:
            raced.append(key)
            fake.put(endpoint_obj("fresh"))
            set_deployed_by(fake, "credit-risk-v3", ["gone", "fresh"])

    fake.before.append(new_endpoint_adds_itself)
    repair_deployed_by(fake, NS)
    assert raced
    assert deployed_by(fake, "credit-risk-v3") == ["fresh"]


def test_endless_conflicts_give_up_with_a_retryable_error(fake: FakeKube) -> None:
    set_deployed_by(fake, "credit-risk-v3", ["gone"])

    seen = []

    def always_changed(verb: str, key: Key) -> None:
        if verb == "patch/status" and key == model_key("credit-risk-v3"):
            seen.append(key)  # another writer, every time, just before ours
            fake.mutate(key, lambda obj: obj["metadata"].update(labels={"n": str(len(seen))}))

    fake.before.append(always_changed)
    with pytest.raises(EndpointSyncError, match="kept conflicting"):
        repair_deployed_by(fake, NS, "credit-risk-v3")
    patches = [k for v, k in fake.writes if v == "patch/status"]
    assert patches == []  # nothing written on a stale read
