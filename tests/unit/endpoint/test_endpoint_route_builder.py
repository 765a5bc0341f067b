"""The Gateway API HTTPRoute: weights, mirror filters with percent, header-targeting rules."""

from __future__ import annotations

from typing import Any

from mlkube.builders.endpoint_route import build_httproute, parent_refs, route_url
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
