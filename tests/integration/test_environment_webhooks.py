"""The Environment admission webhooks through the real API server (TLS, the configurations the
chart ships, the operator serving them): an Environment that a pipeline step, a batch or an
online deployment resolves to cannot be deleted (pinned and `@latest` references, with the
users named), and new references to an archived Environment are refused while existing users
keep working (docs/environments.md §1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.contract import API_VERSION, LABEL_ARCHIVED
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.k8s import ApiError, Kube
from support.operator import registered_webhooks, run_operator, webhook_setup
from support.waiting import wait_for

Obj = dict[str, Any]


def environment(namespace: str, version: str) -> Obj:
    return {
        "apiVersion": API_VERSION, "kind": "Environment",
        "metadata": {"name": f"lgbm-{version}", "namespace": namespace},
        "spec": {"environmentName": "lgbm", "version": version,
                 "image": f"registry.example/lgbm:{version}"},
    }  # fmt: skip


def endpoint(namespace: str, name: str, *refs: str) -> Obj:
    deployments = [{"name": f"d{i}", "model": "m-1", "environment": r} for i, r in enumerate(refs)]
    return {
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"deployments": deployments, "traffic": {"d0": 100}},
    }  # fmt: skip


def batch_endpoint(namespace: str, ref: str) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchEndpoint",
        "metadata": {"name": "nightly", "namespace": namespace},
        "spec": {"deployments": [{"name": "main", "model": "m-1", "environment": ref}]},
    }


def pipeline(namespace: str, ref: str) -> Obj:
    return {
        "apiVersion": API_VERSION, "kind": "Pipeline",
        "metadata": {"name": "retrain", "namespace": namespace},
        "spec": {"steps": [{"name": "train", "environment": ref, "command": ["true"]}]},
    }  # fmt: skip


def _archive(kube: Kube, namespace: str, name: str, archived: bool) -> None:
    labels = {LABEL_ARCHIVED: "true" if archived else None}
    kube.patch(API_VERSION, "Environment", name, {"metadata": {"labels": labels}}, namespace)


def _refused(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args)
    return info.value


@pytest.fixture
def webhook_operator(kube: Kube, namespace: str, tmp_path: Path) -> Iterator[None]:
    setup = webhook_setup(tmp_path, OPERATOR_USER, namespace)
    with registered_webhooks(kube, setup.configurations), run_operator(namespace, env=setup.env):
        kube.create(environment(namespace, "0"))
        _archive(kube, namespace, "lgbm-0", True)
        probe = endpoint(namespace, "probe", "lgbm:0")

        def serving() -> bool:
            try:
                kube.request("POST", f"/apis/{API_VERSION}/namespaces/{namespace}/onlineendpoints",
                             body=probe, query=[("dryRun", "All")])  # fmt: skip
            except ApiError as err:
                return "is archived" in str(err)
            return False

        wait_for(serving, timeout=30, what="the environment-references webhook to be called")
        yield


def test_delete_guard_names_the_users_and_follows_latest(
    kube: Kube, namespace: str, webhook_operator: None
) -> None:
    for version in ("1", "2"):
        kube.create(environment(namespace, version))
    kube.create(pipeline(namespace, "lgbm:1"))
    kube.create(batch_endpoint(namespace, "lgbm:1"))
    kube.create(endpoint(namespace, "shop", "lgbm@latest"))

    err = _refused(kube.delete, API_VERSION, "Environment", "lgbm-1", namespace)
    assert err.status == 409
    assert f"Environment {namespace}/lgbm-1 (lgbm:1) is used by BatchEndpoint nightly " in str(err)
    assert "Pipeline retrain (step train)" in str(err)
    assert "OnlineEndpoint" not in str(err)  # @latest is lgbm:2
    err = _refused(kube.delete, API_VERSION, "Environment", "lgbm-2", namespace)
    assert err.status == 409 and "OnlineEndpoint shop (deployment d0)" in str(err)
    assert kube.get(API_VERSION, "Environment", "lgbm-1", namespace) is not None

    # Users moved elsewhere (or gone): the delete goes through.
    kube.patch(API_VERSION, "Pipeline", "retrain",
               {"spec": {"steps": [{"name": "train", "image": "busybox", "command": ["true"]}]}},
               namespace)  # fmt: skip
    kube.delete(API_VERSION, "BatchEndpoint", "nightly", namespace)
    wait_for(lambda: kube.get(API_VERSION, "BatchEndpoint", "nightly", namespace) is None,
             what="the batch endpoint gone")  # fmt: skip
    kube.delete(API_VERSION, "Environment", "lgbm-1", namespace)
    wait_for(lambda: kube.get(API_VERSION, "Environment", "lgbm-1", namespace) is None,
             what="lgbm-1 gone")  # fmt: skip
    # A version nobody resolves to is free to go; the one @latest now means is not.
    err = _refused(kube.delete, API_VERSION, "Environment", "lgbm-2", namespace)
    assert "OnlineEndpoint shop" in str(err)


def test_new_references_to_an_archived_environment_are_refused(
    kube: Kube, namespace: str, webhook_operator: None
) -> None:
    kube.create(environment(namespace, "1"))
    kube.create(endpoint(namespace, "shop", "lgbm:1"))
    _archive(kube, namespace, "lgbm-1", True)

    err = _refused(kube.create, pipeline(namespace, "lgbm:1"))
    assert err.status == 422
    assert "Environment lgbm:1 (step train) is archived (label mlkube.dev/archived=true)" in str(
        err
    )
    assert "existing users keep it" in str(err)
    # The existing user keeps working: unrelated updates go through.
    kube.patch(API_VERSION, "OnlineEndpoint", "shop", {"metadata": {"labels": {"t": "x"}}},
               namespace)  # fmt: skip
    # ...but it cannot add the archived environment to another deployment of a new name.
    two = endpoint(namespace, "shop", "lgbm:1", "lgbm:1")["spec"]
    kube.patch(API_VERSION, "OnlineEndpoint", "shop", {"spec": two}, namespace)  # same reference
    err = _refused(kube.create, batch_endpoint(namespace, "lgbm:1"))
    assert err.status == 422 and "(deployment main) is archived" in str(err)
    # `@latest` names no version: allowed. Unarchived: allowed again.
    kube.create(batch_endpoint(namespace, "lgbm@latest"))
    _archive(kube, namespace, "lgbm-1", False)
    assert kube.create(pipeline(namespace, "lgbm:1"))["spec"]["steps"][0]["environment"] == "lgbm:1"
