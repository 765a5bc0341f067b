"""The fake API behaves like the API server where the controllers depend on it."""

from __future__ import annotations

import pytest

from mlkube.k8s.errors import ApiError
from support.fake_kube import FakeKube


def cm(name: str, **meta: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ml", **meta}, "data": {"a": "1"}}  # fmt: skip


def test_the_fake_models_the_api_servers_contract() -> None:
    kube = FakeKube()
    owner = kube.create(cm("owner"))
    with pytest.raises(ApiError) as exists:
        kube.create(cm("owner"))
    assert exists.value.status == 409
    ref = {"uid": owner["metadata"]["uid"], "controller": True, "kind": "ConfigMap"}
    child = kube.create(cm("child", labels={"app": "x"}, ownerReferences=[ref]))
    assert [o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", "ml", "app=x")] == ["child"]
    assert "kind" not in kube.list("v1", "ConfigMap", "ml")[0]  # LIST items carry no kind
    stale = {"metadata": {"resourceVersion": child["metadata"]["resourceVersion"]}}
    kube.patch("v1", "ConfigMap", "child", {"data": {"a": "2"}}, "ml")
    with pytest.raises(ApiError) as conflict:
        kube.patch("v1", "ConfigMap", "child", {**stale, "data": {"a": "3"}}, "ml")
    assert conflict.value.status == 409
    with pytest.raises(ApiError) as replaced:
        kube.delete("v1", "ConfigMap", "child", "ml", uid="another-uid")
    assert replaced.value.status == 409
    with pytest.raises(ApiError) as unserved:
        kube.get("example.com/v1", "Widget", "w", "ml")
    assert unserved.value.status == 404
    assert kube.delete("v1", "ConfigMap", "owner", "ml") is True
    assert kube.get("v1", "ConfigMap", "child", "ml") is None  # garbage-collected dependent
    assert kube.delete("v1", "ConfigMap", "owner", "ml") is False
