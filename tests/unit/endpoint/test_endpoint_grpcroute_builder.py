"""The Gateway API GRPCRoute: the HTTPRoute's weights, mirrors and header rules on each
Service's grpc port, attached to its own listener (and none without one)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlkube.api.endpoint import MSG_GRPC_SECTION
from mlkube.builders.endpoint_route import (
    build_grpcroute,
    build_httproute,
    grpc_section_name,
)
from mlkube.builders.names import EndpointRef, deployment_name
from mlkube.builders.operator_config import GatewayParent, OperatorConfig
from mlkube.contract import SERVER_GRPC_PORT

PUBLIC = {"name": "public", "namespace": "infra", "sectionName": "http"}


def _grpc_spec(make_spec: Any, **extra: Any) -> Any:
    gateway = {"parentRefs": [PUBLIC], "grpcSectionName": "grpc"}
    return make_spec(trafficBackend="gateway-api", gateway=gateway, **extra)


def test_grpcroute_literal(owner: EndpointRef, make_spec: Any, config: OperatorConfig) -> None:
    spec = make_spec(
        trafficBackend="gateway-api",
        gateway={
            "parentRefs": [PUBLIC, {"name": "internal"}],
            "grpcSectionName": "grpc",
            "hostnames": ["credit.example.com"],
        },
        traffic={"blue": 100, "green": 0},
        mirror={"green": 20},
    )
    route = build_grpcroute(owner, spec, config)
    assert route is not None
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "GRPCRoute"
    assert route["metadata"]["name"] == "credit"
    assert route["metadata"]["namespace"] == "ml"
    assert route["metadata"]["ownerReferences"][0]["uid"] == "0f1e2d3c-uid"
    assert route["metadata"]["labels"]["mlkube.dev/endpoint"] == "credit"

    def header_rule(name: str) -> dict[str, Any]:
        return {
            "matches": [
                {"headers": [{"type": "Exact", "name": "x-mlkube-deployment", "value": name}]},
                {"headers": [{"type": "Exact", "name": "azureml-model-deployment", "value": name}]},
            ],
            "backendRefs": [{"name": deployment_name("credit", name), "port": 8081, "weight": 1}],
        }

    gateway = {"group": "gateway.networking.k8s.io", "kind": "Gateway"}
    assert route["spec"] == {
        # every parent Gateway, at the gRPC listener (never the HTTPRoute's "http")
        "parentRefs": [
            {**gateway, "name": "public", "namespace": "infra", "sectionName": "grpc"},
            {**gateway, "name": "internal", "sectionName": "grpc"},
        ],
        "hostnames": ["credit.example.com"],
        "rules": [
            header_rule("blue"),
            header_rule("green"),
            {  # no matches: every gRPC request the header rules leave
                "backendRefs": [
                    {"name": "credit-blue-09bb84ab", "port": 8081, "weight": 100},
                    {"name": "credit-green-2f01bca0", "port": 8081, "weight": 0},
                ],
                "filters": [
                    {
                        "type": "RequestMirror",
                        "requestMirror": {
                            "backendRef": {"name": "credit-green-2f01bca0", "port": 8081},
                            "percent": 20,
                        },
                    }
                ],
            },
        ],
    }


def test_weights_follow_traffic_and_no_mirror_means_no_filter(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    route = build_grpcroute(owner, _grpc_spec(make_spec), config)
    assert route is not None
    split = route["spec"]["rules"][-1]
    assert [(b["name"], b["port"], b["weight"]) for b in split["backendRefs"]] == [
        ("credit-blue-09bb84ab", SERVER_GRPC_PORT, 70),
        ("credit-green-2f01bca0", SERVER_GRPC_PORT, 30),
    ]
    assert "filters" not in split
    assert "matches" not in split
    assert "hostnames" not in route["spec"]


def test_the_grpcroute_has_the_httproutes_rules_on_the_grpc_port(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    spec = _grpc_spec(make_spec, traffic={"blue": 40, "green": 60})
    grpc, http = build_grpcroute(owner, spec, config), build_httproute(owner, spec, config)
    assert grpc is not None

    def without_ports_and_path(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for rule in rules:
            rule = {**rule, "backendRefs": [{**b, "port": 0} for b in rule["backendRefs"]]}
            if rule.get("matches") == [{"path": {"type": "PathPrefix", "value": "/"}}]:
                del rule["matches"]
            out.append(rule)
        return out

    assert without_ports_and_path(grpc["spec"]["rules"]) == without_ports_and_path(
        http["spec"]["rules"]
    )
    assert {b["port"] for r in grpc["spec"]["rules"] for b in r["backendRefs"]} == {8081}
    assert {b["port"] for r in http["spec"]["rules"] for b in r["backendRefs"]} == {80}


def test_no_grpc_listener_means_no_grpcroute(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    spec = make_spec(trafficBackend="gateway-api", gateway={"parentRefs": [PUBLIC]})
    assert grpc_section_name(spec, config) is None
    assert build_grpcroute(owner, spec, config) is None
    # A listener but no Gateway to find it on: nothing either.
    bare = make_spec(trafficBackend="gateway-api", gateway={"grpcSectionName": "grpc"})
    assert build_grpcroute(owner, bare, config) is None


def test_the_operator_default_listener_applies_on_the_default_gateway_only(
    owner: EndpointRef, make_spec: Any
) -> None:
    config = OperatorConfig(
        default_gateway=GatewayParent("shared", "gw", "https"), default_grpc_section="grpcs"
    )
    on_default = make_spec(trafficBackend="gateway-api")
    route = build_grpcroute(owner, on_default, config)
    assert route is not None
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "shared",
            "namespace": "gw",
            "sectionName": "grpcs",
        }
    ]
    assert build_httproute(owner, on_default, config)["spec"]["parentRefs"][0]["sectionName"] == (
        "https"
    )
    # The endpoint's own Gateways: the operator cannot know their listeners.
    own = make_spec(trafficBackend="gateway-api", gateway={"parentRefs": [PUBLIC]})
    assert build_grpcroute(owner, own, config) is None
    # The endpoint's own listener wins over the default one.
    named = make_spec(trafficBackend="gateway-api", gateway={"grpcSectionName": "h2"})
    route = build_grpcroute(owner, named, config)
    assert route is not None
    assert route["spec"]["parentRefs"][0]["sectionName"] == "h2"
    # ... but never onto the default Gateway's HTTP listener.
    clash = make_spec(trafficBackend="gateway-api", gateway={"grpcSectionName": "https"})
    assert build_grpcroute(owner, clash, config) is None


def test_rule_count_stays_within_the_grpcroute_limit(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    deployments = [{"name": f"d{i:02d}", "model": "m"} for i in range(16)]
    spec = _grpc_spec(make_spec, deployments=deployments, traffic={"d00": 100})
    route = build_grpcroute(owner, spec, config)
    assert route is not None
    rules = route["spec"]["rules"]
    assert len(rules) == 16
    assert [r["backendRefs"][0]["name"] for r in rules[:-1]] == [
        deployment_name("credit", f"d{i:02d}") for i in range(15)
    ]
    assert len(rules[-1]["backendRefs"]) == 16  # every deployment still gets its weight
    assert sum(len(r.get("matches", [])) for r in rules) <= 128  # the per-route match limit


def test_the_grpc_listener_must_differ_from_the_httproutes(make_spec: Any) -> None:
    with pytest.raises(ValidationError, match="grpcSectionName must differ"):
        make_spec(
            trafficBackend="gateway-api",
            gateway={"parentRefs": [PUBLIC], "grpcSectionName": "http"},
        )
    assert "apart from the HTTPRoute's" in MSG_GRPC_SECTION
    # A parent without a sectionName (every listener) does not conflict by name.
    spec = make_spec(
        trafficBackend="gateway-api",
        gateway={"parentRefs": [{"name": "public"}], "grpcSectionName": "grpc"},
    )
    assert spec.gateway is not None and spec.gateway.grpc_section_name == "grpc"
