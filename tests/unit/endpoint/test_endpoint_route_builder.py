"""The Gateway API HTTPRoute: weights, mirror filters with percent, header-targeting rules."""

from __future__ import annotations

from typing import Any

from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.endpoint_route import build_grpcroute, build_httproute, parent_refs, route_url
from mlkube.builders.names import EndpointRef, deployment_name
from mlkube.builders.operator_config import GatewayParent, OperatorConfig


def _gateway_spec(make_spec: Any, **extra: Any) -> Any:
    return make_spec(
        trafficBackend="gateway-api",
        gateway={"parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "http"}]},
        **extra,
    )


def test_httproute_literal(owner: EndpointRef, make_spec: Any, config: OperatorConfig) -> None:
    spec = _gateway_spec(make_spec, traffic={"blue": 100, "green": 0}, mirror={"green": 20})
    route = build_httproute(owner, spec, config)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    assert route["metadata"]["name"] == "credit"
    assert route["metadata"]["ownerReferences"][0]["uid"] == "0f1e2d3c-uid"

    def header_rule(name: str) -> dict[str, Any]:
        return {
            "matches": [
                {"headers": [{"type": "Exact", "name": "x-mlkube-deployment", "value": name}]},
                {"headers": [{"type": "Exact", "name": "azureml-model-deployment", "value": name}]},
            ],
            "backendRefs": [{"name": deployment_name("credit", name), "port": 80, "weight": 1}],
        }

    assert route["spec"] == {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "public",
                "namespace": "infra",
                "sectionName": "http",
            }
        ],
        "rules": [
            header_rule("blue"),
            header_rule("green"),
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": "credit-blue-09bb84ab", "port": 80, "weight": 100},
                    {"name": "credit-green-2f01bca0", "port": 80, "weight": 0},
                ],
                "filters": [
                    {
                        "type": "RequestMirror",
                        "requestMirror": {
                            "backendRef": {"name": "credit-green-2f01bca0", "port": 80},
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
    route = build_httproute(owner, _gateway_spec(make_spec), config)
    split = route["spec"]["rules"][-1]
    assert [(b["name"], b["weight"]) for b in split["backendRefs"]] == [
        ("credit-blue-09bb84ab", 70),
        ("credit-green-2f01bca0", 30),
    ]
    assert "filters" not in split


def test_parent_refs_fall_back_to_the_operator_gateway(make_spec: Any) -> None:
    spec = make_spec(trafficBackend="gateway-api")
    assert parent_refs(spec, OperatorConfig()) == []
    config = OperatorConfig(default_gateway=GatewayParent(name="shared", namespace="gw"))
    assert parent_refs(spec, config) == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "shared",
            "namespace": "gw",
        }
    ]


def test_hostnames_make_the_url(owner: EndpointRef, make_spec: Any, config: OperatorConfig) -> None:
    spec = make_spec(
        trafficBackend="gateway-api",
        gateway={"parentRefs": [{"name": "public"}], "hostnames": ["credit.example.com"]},
    )
    assert build_httproute(owner, spec, config)["spec"]["hostnames"] == ["credit.example.com"]
    assert route_url(spec) == "http://credit.example.com"
    assert route_url(_gateway_spec(make_spec)) is None
    wildcard = make_spec(trafficBackend="gateway-api", gateway={"hostnames": ["*.example.com"]})
    assert route_url(wildcard) is None


def test_rule_count_stays_within_the_httproute_limit(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    deployments = [{"name": f"d{i:02d}", "model": "m"} for i in range(16)]
    spec = make_spec(
        trafficBackend="gateway-api",
        gateway={"parentRefs": [{"name": "public"}]},
        deployments=deployments,
        traffic={"d00": 100},
    )
    rules = build_httproute(owner, spec, config)["spec"]["rules"]
    assert len(rules) == 16
    assert len(rules[-1]["backendRefs"]) == 16  # every deployment still gets its weight


def test_grpcroute_mirrors_the_httproute_on_the_grpc_port(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    spec = _gateway_spec(make_spec, traffic={"blue": 100, "green": 0}, mirror={"green": 10})
    route = build_grpcroute(owner, spec, config)
    http = build_httproute(owner, spec, config)
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "GRPCRoute")
    assert route["metadata"]["name"] == http["metadata"]["name"] == "credit"
    assert route["spec"]["parentRefs"] == http["spec"]["parentRefs"]
    *headers, split = route["spec"]["rules"]
    blue, green = deployment_name("credit", "blue"), deployment_name("credit", "green")
    assert split["backendRefs"] == [
        {"name": blue, "port": 8081, "weight": 100},
        {"name": green, "port": 8081, "weight": 0},
    ]
    assert split["filters"] == [
        {"type": "RequestMirror",
         "requestMirror": {"backendRef": {"name": green, "port": 8081}, "percent": 10}}
    ]  # fmt: skip
    assert [r["matches"][0]["headers"][0]["value"] for r in headers] == ["blue", "green"]
    assert headers[0]["matches"][0]["headers"][0]["name"] == "x-mlkube-deployment"
    assert headers[1]["backendRefs"] == [{"name": green, "port": 8081, "weight": 1}]


def test_a_grpcroute_only_where_the_cluster_serves_it(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig, models: Any
) -> None:
    spec = _gateway_spec(make_spec)
    kinds = lambda grpc: [  # noqa: E731
        c["kind"] for c in build_endpoint_children(owner, spec, models, config, [], grpc_route=grpc)
        if c["apiVersion"].startswith("gateway")
    ]  # fmt: skip
    assert kinds(False) == ["HTTPRoute"] and kinds(True) == ["HTTPRoute", "GRPCRoute"]
