"""On the real control plane: an endpoint whose children an operator from before hashed names
made (`up-blue`, `up-router`, `up-keys`, owned by the endpoint) keeps its clients' API keys
when the new operator takes over, and the old children are gone once the new Deployments are
Available (kwok makes them so)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders import endpoint_route, endpoint_router, endpoint_server
from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.endpoint_status import workload_health
from mlkube.builders.names import EndpointRef, deployment_name, dns_name, keys_secret_name
from mlkube.builders.operator_config import parse_operator_config
from mlkube.contract import API_VERSION
from mlkube.controllers.endpoint_models import read_models
from mlkube.k8s import Kube
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.operator import run_operator
from support.waiting import wait_for

EP = "up"
OLD_KEYS = ["client-key-one", "client-key-two"]


def old_operator_children(
    kube: Kube, namespace: str, uid: str, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, str, str]]:
    """Create what the operator before hashed names built: today's builders with the old names
    (plain joins), owned by the endpoint. Returns (apiVersion, kind, name) of each."""
    old_deployment = dns_name  # endpoint-deployment, e.g. up-blue

    def old_router(endpoint: str) -> str:
        return dns_name(endpoint, "router")

    def old_keys(endpoint: str) -> str:
        return dns_name(endpoint, "keys")

    with monkeypatch.context() as patch:
        for module in (endpoint_server, endpoint_router, endpoint_route):
            patch.setattr(module, "deployment_name", old_deployment)
        patch.setattr(endpoint_router, "router_name", old_router)
        patch.setattr(endpoint_router, "keys_secret_name", old_keys)
        spec = OnlineEndpointSpec.model_validate(blue_green_spec(auth={"mode": "key"}))
        models, blockers = read_models(kube, namespace, {d.model for d in spec.deployments})
        assert blockers == []
        owner = EndpointRef(EP, namespace, uid)
        config = parse_operator_config(os.environ)
        children = build_endpoint_children(owner, spec, models, config, OLD_KEYS, False)
    made = []
    for child in children:
        if child["metadata"]["name"] != EP:  # the endpoint's Service kept its name
            kube.create(child)
            made.append((child["apiVersion"], child["kind"], child["metadata"]["name"]))
    return made


def test_upgrade_keeps_the_keys_and_prunes_the_old_children_once_the_new_are_available(
    kube: Kube, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
    # The old operator's endpoint: created (and its children made) while no operator runs.
    endpoint = kube.create(endpoint_object(EP, namespace, blue_green_spec(auth={"mode": "key"})))
    old = old_operator_children(kube, namespace, endpoint["metadata"]["uid"], monkeypatch)
    assert ("v1", "Secret", f"{EP}-keys") in old and ("apps/v1", "Deployment", f"{EP}-blue") in old

    deleted_while: list[Any] = []

    def new_deployments_health() -> list[Any]:
        names = [deployment_name(EP, "blue"), deployment_name(EP, "green")]
        return [workload_health(kube.get("apps/v1", "Deployment", n, namespace)) for n in names]

    with run_operator(namespace):

        def old_gone() -> bool:
            left = [k for k in old if kube.get(k[0], k[1], k[2], namespace) is not None]
            if len(left) < len(old) and not deleted_while:
                deleted_while.append(new_deployments_health())  # at the first deletion seen
            return not left

        wait_for(old_gone, timeout=60, interval=0.05, what="the old children pruned")
        wait_endpoint_ready(kube, namespace, EP)
        secret = kube.get("v1", "Secret", keys_secret_name(EP), namespace)
        assert read_keys(secret) == OLD_KEYS  # every client's key still works
    # When the first old child went, the new model Deployments existed and were Available.
    (health,) = deleted_while
    assert all(h is not None and h.available for h in health), health
    assert kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) is not None
