"""Pure reconcile decisions: merge patches, traffic Events, pruning, deployedBy edits."""

from __future__ import annotations

from typing import Any

from mlkube.reconcile.endpoint_changes import (
    endpoint_reference,
    format_split,
    merge_patch,
    stale_children,
    traffic_events,
    with_reference,
)


def test_merge_patch_nulls_removed_map_keys() -> None:
    previous = {"traffic": {"blue": 70, "green": 30}, "url": "http://a", "message": "x"}
    desired = {"traffic": {"green": 100}, "url": "http://a"}
    assert merge_patch(previous, desired) == {
        "traffic": {"blue": None, "green": 100},
        "message": None,
    }
    assert merge_patch(desired, desired) == {}
    # Lists are replaced whole (that is what a merge patch does with them).
    assert merge_patch({"deployments": [1, 2]}, {"deployments": [2]}) == {"deployments": [2]}


def test_traffic_events_describe_the_change() -> None:
    applied = {"observedGeneration": 2, "traffic": {"blue": 70, "green": 30}, "mirror": {}}
    assert traffic_events(applied, {"blue": 50, "green": 50}, {}) == [
        ("TrafficChanged", "traffic blue=70 green=30 \u2192 blue=50 green=50")
    ]
    assert traffic_events(applied, {"blue": 100, "green": 0}, {"green": 10}) == [
        ("TrafficChanged", "traffic blue=70 green=30 \u2192 blue=100 green=0"),
        ("MirrorChanged", "mirror (none) \u2192 green=10"),
    ]
    assert traffic_events(applied, {"blue": 70, "green": 30}, {"green": 0}) == []
    assert traffic_events({}, {"blue": 100}, {}) == []  # first apply: nothing "changed"
    # The passes so far found no split served (no router Ready, still loading, blocked): the
    # status has no `traffic`, and the routers' first load is the first apply.
    waiting = {"observedGeneration": 1}
    assert traffic_events(waiting, {"blue": 100}, {}) == []
    assert traffic_events(waiting, None, {}) == []  # none served yet again
    served = {"observedGeneration": 1, "traffic": {}}  # an empty split is a split
    assert traffic_events(served, {"blue": 100}, {}) == [
        ("TrafficChanged", "traffic (none) \u2192 blue=100")
    ]
    assert format_split({}) == "(none)"


def _obj(name: str, uid: str = "uid-1", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [{"uid": uid, "controller": True, "kind": "OnlineEndpoint"}],
            **meta,
        }
    }


def test_stale_children_only_owned_and_undesired() -> None:
    live = [
        _obj("credit-blue"),
        _obj("credit-green"),
        _obj("credit-old-owner", uid="uid-0"),  # a previous endpoint of the same name
        _obj("credit-going", deletionTimestamp="2026-01-01T00:00:00Z"),
        {"metadata": {"name": "hand-made"}},
    ]
    desired = {("apps/v1", "Deployment", "credit-blue")}
    assert stale_children(live, "apps/v1", "Deployment", desired, "uid-1") == ["credit-green"]


def test_deployed_by_edits_are_idempotent() -> None:
    ref = endpoint_reference("credit", "ml")
    other = {"kind": "BatchJob", "name": "nightly", "namespace": "ml"}
    added = with_reference([other], ref, present=True)
    assert added == [other, ref]
    assert with_reference(added, ref, present=True) is None
    assert with_reference(added, ref, present=False) == [other]
    assert with_reference([other], ref, present=False) is None
