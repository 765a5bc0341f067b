"""The gateway-api traffic backend over gRPC, against the real API server: with the HTTPRoute
CRD alone the endpoint is Ready on HTTP and has no GRPCRoute; once the GRPCRoute CRD (a test
fixture with a structural schema) is served, a GRPCRoute with weights, mirror filters and
header rules on the grpc ports attaches to the endpoint's gRPC listener; removing the listener
prunes it and leaves the HTTPRoute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from mlkube.api.endpoint import MSG_GRPC_SECTION
from mlkube.builders.names import deployment_name
from mlkube.contract import API_VERSION, SERVER_GRPC_PORT
from mlkube.k8s import Kube
from support.crd_checks import rejected
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
FIXTURES = Path(__file__).parent / "fixtures"
ROUTES = "gateway.networking.k8s.io/v1"
HTTP_CRD = "httproutes.gateway.networking.k8s.io"
GRPC_CRD = "grpcroutes.gateway.networking.k8s.io"


@pytest.fixture
def httproute_only(kube: Kube) -> Iterator[None]:
    """A cluster with Gateway API CRDs older than GRPCRoute; left without either after."""
    remove_crd(kube, GRPC_CRD)
    install_crd(kube, FIXTURES / "httproute-crd.yaml", HTTP_CRD, ROUTES)
    yield
    for name in (GRPC_CRD, HTTP_CRD):
        remove_crd(kube, name)


def test_gateway_backend_adds_a_grpcroute_on_its_listener_and_prunes_it_without_one(
    kube: Kube,
    namespace: str,
    tmp_path: Path,
    httproute_only: None,
    running_operator: KopfRunner,
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    spec = blue_green_spec(
        trafficBackend="gateway-api",
        traffic={"blue": 100, "green": 0},
        mirror={"green": 20},
        gateway={
            "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "http"}],
            "grpcSectionName": "grpc",
            "hostnames": ["credit.example.com"],
        },
    )
    kube.create(endpoint_object(EP, namespace, spec))

    # Gateway API without GRPCRoute: HTTP works, nothing fails, no GRPCRoute.
    obj = wait_endpoint_ready(kube, namespace, EP)
    assert condition(obj, "Degraded")["status"] == "False"
    assert kube.get(ROUTES, "HTTPRoute", EP, namespace) is not None
    assert "GRPCRoute" not in kube.served_kinds(ROUTES, max_age=0)

    install_crd(kube, FIXTURES / "grpcroute-crd.yaml", GRPC_CRD, ROUTES)
    # A spec change runs a pass at once (the resync loop would, later).
    kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": {"mirror": {"green": 25}}}, namespace)
    obj = wait_endpoint_ready(kube, namespace, EP)
    route = wait_for(
        lambda: kube.get(ROUTES, "GRPCRoute", EP, namespace),
        timeout=10,
        interval=0.05,
        what="GRPCRoute created",
    )
    assert route["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "infra",
            "sectionName": "grpc",
        }
    ]
    assert route["spec"]["hostnames"] == ["credit.example.com"]
    rules = route["spec"]["rules"]
    blue, green = deployment_name(EP, "blue"), deployment_name(EP, "green")
    split = rules[-1]
    assert "matches" not in split  # every gRPC request the header rules leave
    assert split["backendRefs"] == [
        {"name": blue, "port": SERVER_GRPC_PORT, "weight": 100},
        {"name": green, "port": SERVER_GRPC_PORT, "weight": 0},
    ]
    assert split["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": green, "port": SERVER_GRPC_PORT},
                "percent": 25,
            },
        }
    ]
    targeted = {r["backendRefs"][0]["name"]: r for r in rules[:-1]}
    assert set(targeted) == {blue, green}
    assert targeted[green]["matches"] == [
        {"headers": [{"type": "Exact", "name": "x-mlkube-deployment", "value": "green"}]},
        {"headers": [{"type": "Exact", "name": "azureml-model-deployment", "value": "green"}]},
    ]
    assert targeted[green]["backendRefs"] == [
        {"name": green, "port": SERVER_GRPC_PORT, "weight": 1}
    ]
    http = kube.get(ROUTES, "HTTPRoute", EP, namespace)
    assert http is not None and http["spec"]["parentRefs"][0]["sectionName"] == "http"

    # The API server refuses the HTTPRoute's own listener for gRPC (a CEL rule of the CRD).
    same = {"spec": {"gateway": {"grpcSectionName": "http"}}}
    assert MSG_GRPC_SECTION in rejected(
        kube.patch, API_VERSION, "OnlineEndpoint", EP, same, namespace
    )

    # The gRPC listener removed: the GRPCRoute is pruned, the HTTPRoute stays.
    change = {"spec": {"gateway": {"grpcSectionName": None}}}
    kube.patch(API_VERSION, "OnlineEndpoint", EP, change, namespace)
    wait_for(
        lambda: kube.get(ROUTES, "GRPCRoute", EP, namespace) is None,
        timeout=10,
        interval=0.05,
        what="GRPCRoute pruned",
    )
    obj = wait_endpoint_ready(kube, namespace, EP)
    assert "grpcSectionName" not in obj["spec"]["gateway"]
    assert kube.get(ROUTES, "HTTPRoute", EP, namespace) is not None
