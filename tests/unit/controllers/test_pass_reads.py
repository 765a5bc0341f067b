"""PassReads: a pass reads each object once, sees its own writes, and reads again after a
failed write; LISTs always go to the API."""

from __future__ import annotations

import pytest

from mlkube.controllers.kube import ApiError
from mlkube.controllers.pass_reads import PassReads
from support.counting_kube import CountingKube
from support.fake_kube import FakeKube


def config_map(name: str = "cm", **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns"},
        "data": dict(data),
    }


def test_an_object_is_read_once_and_absence_is_remembered() -> None:
    fake = FakeKube()
    fake.put(config_map(a="1"))
    counted = CountingKube(fake)
    reads = PassReads(counted)
    first = reads.get("v1", "ConfigMap", "cm", "ns")
    assert first is not None
    first["data"]["a"] = "changed by the caller"  # callers get copies
    again = reads.get("v1", "ConfigMap", "cm", "ns")
    assert again is not None and again["data"] == {"a": "1"}
    assert reads.get("v1", "ConfigMap", "other", "ns") is None
    assert reads.get("v1", "ConfigMap", "other", "ns") is None
    assert counted.calls["get", "ConfigMap"] == 2


def test_a_write_is_what_later_reads_see_without_a_request() -> None:
    fake = FakeKube()
    counted = CountingKube(fake)
    reads = PassReads(counted)
    assert reads.get("v1", "ConfigMap", "cm", "ns") is None
    created = reads.create(config_map(a="1"))
    seen = reads.get("v1", "ConfigMap", "cm", "ns")
    assert seen is not None
    assert seen["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    reads.patch("v1", "ConfigMap", "cm", {"data": {"a": "2"}}, "ns")
    seen = reads.get("v1", "ConfigMap", "cm", "ns")
    assert seen is not None and seen["data"] == {"a": "2"}
    assert seen["kind"] == "ConfigMap"
    assert counted.calls["get", "ConfigMap"] == 1
    reads.delete("v1", "ConfigMap", "cm", "ns")
    assert reads.get("v1", "ConfigMap", "cm", "ns") is None
    assert counted.calls["get", "ConfigMap"] == 2  # a delete is read again


def test_a_failed_write_makes_the_next_read_fresh() -> None:
    fake = FakeKube()
    fake.put(config_map(a="1"))
    reads = PassReads(fake)
    stale = reads.get("v1", "ConfigMap", "cm", "ns")
    assert stale is not None
    fake.mutate(("v1", "ConfigMap", "ns", "cm"), lambda o: o["data"].update(a="other"))
    patch = {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]}}
    with pytest.raises(ApiError) as err:
        reads.patch("v1", "ConfigMap", "cm", patch, "ns")
    assert err.value.status == 409
    fresh = reads.get("v1", "ConfigMap", "cm", "ns")
    assert fresh is not None and fresh["data"] == {"a": "other"}


def test_lists_are_never_cached() -> None:
    fake = FakeKube()
    reads = PassReads(fake)
    assert reads.list("v1", "ConfigMap", "ns") == []
    fake.put(config_map())
    assert [o["metadata"]["name"] for o in reads.list("v1", "ConfigMap", "ns")] == ["cm"]
