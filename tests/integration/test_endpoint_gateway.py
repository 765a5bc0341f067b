"""The gateway-api traffic backend: Degraded without the HTTPRoute API, then an HTTPRoute with
weights, mirror filters and header rules once the CRD (a test fixture) is installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.builders.names import deployment_name, router_name
from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.crd_install import install_crd, remove_crd
from support.endpoints import (
    blue_green_spec,
    condition,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.waiting import wait_for

EP = "credit"
CRD_FILE = Path(__file__).parent / "fixtures" / "httproute-crd.yaml"
CRD_NAME = "httproutes.gateway.networking.k8s.io"


@pytest.fixture
def without_httproute_crd(kube: Kube) -> Iterator[None]:
    """Start without the Gateway API; leave the cluster without it again."""
    remove_crd(kube, CRD_NAME)
    yield
    remove_crd(kube, CRD_NAME)


def test_gateway_backend_builds_a_weighted_mirrored_httproute(
    kube: Kube,
    namespace: str,
    tmp_path: Path,
    without_httproute_crd: None,
    running_operator: KopfRunner,
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    spec = blue_green_spec(
        trafficBackend="gateway-api",
        gateway={"parentRefs": [{"name": "public", "namespace": "infra"}],
                 "hostnames": ["credit.example.com"]},
    )  # fmt: skip
    kube.create(endpoint_object(EP, namespace, spec))

    def degraded() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace)
        return obj if condition(obj, "Degraded").get("reason") == "GatewayAPIMissing" else None

    obj = wait_for(degraded, timeout=10, interval=0.05, what="Degraded GatewayAPIMissing")
    assert condition(obj, "Ready")["status"] == "False"
    assert "install the Gateway API CRDs" in obj["status"]["message"]

    install_crd(kube, CRD_FILE, CRD_NAME, "gateway.networking.k8s.io/v1")
    # A spec change wakes the handler from its slow retry (the resync loop would, later).
    change = {"spec": {"traffic": {"blue": 100, "green": 0}, "mirror": {"green": 20}}}
    kube.patch(API_VERSION, "OnlineEndpoint", EP, change, namespace)
    obj = wait_endpoint_ready(kube, namespace, EP)
    assert obj["status"]["url"] == "http://credit.example.com"
    assert obj["status"]["mirror"] == {"green": 20}

    route = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", EP, namespace)
    assert route is not None
    assert route["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    rules = route["spec"]["rules"]
    split = rules[-1]
    assert [(b["name"], b["weight"]) for b in split["backendRefs"]] == [
        (deployment_name(EP, "blue"), 100),
        (deployment_name(EP, "green"), 0),
    ]
    assert split["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": deployment_name(EP, "green"), "port": 80},
                "percent": 20,
            },
        }
    ]
    targeted = {r["backendRefs"][0]["name"]: r["matches"][0]["headers"][0] for r in rules[:-1]}
    assert targeted[deployment_name(EP, "green")] == {
        "type": "Exact",
        "name": "x-mlkube-deployment",
        "value": "green",
    }
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    assert route["spec"]["hostnames"] == ["credit.example.com"]
    # No router in this mode: the Gateway splits and mirrors.
    assert kube.get("apps/v1", "Deployment", router_name(EP), namespace) is None
    assert kube.get("v1", "ConfigMap", router_name(EP), namespace) is None
