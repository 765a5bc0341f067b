"""The OnlineEndpoint kind: traffic rules in CEL and the matching Python-side checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from mlkube.api import endpoint as ep
from mlkube.api.crdgen import build_crd, openapi_schema
from mlkube.api.endpoint import ONLINE_ENDPOINT, OnlineEndpointSpec


@pytest.fixture(scope="module")
def spec_schema() -> Mapping[str, Any]:
    schema: Mapping[str, Any] = openapi_schema(build_crd(ONLINE_ENDPOINT))["properties"]["spec"]
    return schema


def _messages(node: Mapping[str, Any]) -> list[str]:
    return [rule["message"] for rule in node.get("x-kubernetes-validations", [])]


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deployments": [{"name": "blue", "model": "m-v1"}, {"name": "green", "model": "m-v2"}],
        "traffic": {"blue": 70, "green": 30},
    }
    spec.update(overrides)
    return spec


def test_cel_rules_are_attached_where_they_apply(spec_schema: Mapping[str, Any]) -> None:
    assert _messages(spec_schema) == [
        ep.MSG_TRAFFIC_KEYS,
        ep.MSG_MIRROR_KEYS,
        ep.MSG_LIVE_AND_MIRROR,
        ep.MSG_KEY_AUTH_GATEWAY,
        ep.MSG_ROLLOUT_STABLE,
        ep.MSG_ROLLOUT_CANDIDATE,
        ep.MSG_ROLLOUT_CANDIDATE_WEIGHT,
        ep.MSG_ROLLOUT_ROUTER_METRICS,
    ]
    traffic = spec_schema["properties"]["traffic"]
    assert _messages(traffic) == [ep.MSG_TRAFFIC_SUM]
    assert "sum() == 100" in traffic["x-kubernetes-validations"][0]["rule"]
    deployment = spec_schema["properties"]["deployments"]["items"]
    assert _messages(deployment) == [ep.MSG_REPLICAS_XOR, ep.MSG_RESERVED_NAME]
    autoscale = deployment["properties"]["autoscale"]
    assert _messages(autoscale) == [ep.MSG_AUTOSCALE_RANGE, ep.MSG_AUTOSCALE_TARGET]
    assert "targetCPUUtilization" in autoscale["properties"]
    gateway = spec_schema["properties"]["gateway"]
    assert _messages(gateway) == [ep.MSG_GRPC_SECTION]
    assert gateway["x-kubernetes-validations"][0]["fieldPath"] == ".grpcSectionName"
    # Gateway API listener names are DNS subdomains: dots are allowed (was a DNS label).
    assert gateway["properties"]["grpcSectionName"]["pattern"] == ep.SECTION_NAME_PATTERN
    parent = gateway["properties"]["parentRefs"]["items"]["properties"]["sectionName"]
    assert (parent["pattern"], parent["maxLength"]) == (ep.SECTION_NAME_PATTERN, 253)


def test_dotted_listener_names_are_accepted_and_bad_ones_refused() -> None:
    gateway = {
        "parentRefs": [{"name": "gw", "sectionName": "https.public"}],
        "grpcSectionName": "grpc.public",
    }
    spec = OnlineEndpointSpec.model_validate(_spec(trafficBackend="gateway-api", gateway=gateway))
    assert spec.gateway is not None and spec.gateway.grpc_section_name == "grpc.public"
    for bad in ("grpc.", ".grpc", "gRPC", "grpc..public", "a" * 254):
        with pytest.raises(ValidationError, match=r"grpc_?[sS]ection_?[nN]ame"):
            OnlineEndpointSpec.model_validate(
                _spec(trafficBackend="gateway-api", gateway={"grpcSectionName": bad})
            )


def test_bounds_and_list_map(spec_schema: Mapping[str, Any]) -> None:
    props = spec_schema["properties"]
    assert props["deployments"]["x-kubernetes-list-type"] == "map"
    assert props["deployments"]["x-kubernetes-list-map-keys"] == ["name"]
    assert props["deployments"]["maxItems"] == ep.MAX_DEPLOYMENTS
    percent = props["traffic"]["additionalProperties"]
    assert (percent["type"], percent["minimum"], percent["maximum"]) == ("integer", 0, 100)
    assert props["mirror"]["maxProperties"] == ep.MAX_DEPLOYMENTS
    assert props["trafficBackend"]["enum"] == ["router", "gateway-api"]
    assert props["trafficBackend"]["default"] == "router"
    assert props["auth"]["properties"]["mode"]["enum"] == ["none", "key"]
    runtime = props["deployments"]["items"]["properties"]["runtime"]
    assert runtime["enum"] == ["auto", "sklearn", "onnx", "mlflow", "custom"]


def test_printer_columns() -> None:
    crd = build_crd(ONLINE_ENDPOINT)
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["URL", "Ready", "Traffic", "Rollout", "Age"]
    assert columns[1]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_valid_blue_green() -> None:
    spec = OnlineEndpointSpec.model_validate(
        _spec(
            traffic={"blue": 100},
            mirror={"green": 10},
            trafficBackend="gateway-api",
            gateway={"parentRefs": [{"name": "public", "namespace": "infra"}]},
        )
    )
    assert spec.gateway is not None
    assert spec.gateway.parent_refs[0].namespace == "infra"
    assert spec.traffic == {"blue": 100}
    assert spec.mirror == {"green": 10}
    assert spec.traffic_backend == "gateway-api"
    assert OnlineEndpointSpec.model_validate({}).traffic_backend == "router"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"traffic": {"blue": 70, "green": 20}}, ep.MSG_TRAFFIC_SUM),
        ({"traffic": {"blue": 100, "red": 0}}, ep.MSG_TRAFFIC_KEYS),
        ({"traffic": {"blue": 100}, "mirror": {"red": 5}}, ep.MSG_MIRROR_KEYS),
        ({"mirror": {"green": 5}}, ep.MSG_LIVE_AND_MIRROR),
        (
            {"deployments": [{"name": "blue", "model": "a"}, {"name": "blue", "model": "b"}]},
            ep.MSG_DUPLICATE_DEPLOYMENT,
        ),
        (
            {
                "deployments": [
                    {
                        "name": "b",
                        "model": "a",
                        "replicas": 1,
                        "autoscale": {"maxReplicas": 2, "targetConcurrency": 4},
                    }
                ],
                "traffic": {},
            },
            ep.MSG_REPLICAS_XOR,
        ),
        (
            {
                "deployments": [
                    {
                        "name": "b",
                        "model": "a",
                        "autoscale": {"minReplicas": 3, "maxReplicas": 2, "targetConcurrency": 4},
                    }
                ],
                "traffic": {},
            },
            ep.MSG_AUTOSCALE_RANGE,
        ),
        (
            {
                "deployments": [{"name": "b", "model": "a", "autoscale": {"maxReplicas": 2}}],
                "traffic": {},
            },
            ep.MSG_AUTOSCALE_TARGET,
        ),
        ({"traffic": {"blue": 170, "green": -70}}, "less than or equal to 100"),
        ({"trafficBackend": "istio"}, "router"),
        ({"deployments": [{"name": "router", "model": "a"}], "traffic": {}}, ep.MSG_RESERVED_NAME),
        ({"trafficBackend": "gateway-api", "auth": {"mode": "key"}}, ep.MSG_KEY_AUTH_GATEWAY),
        ({"deployments": [{"name": "Blue", "model": "a"}], "traffic": {}}, "pattern"),
        (
            {
                "trafficBackend": "gateway-api",
                "gateway": {
                    "parentRefs": [{"name": "gw", "sectionName": "h"}],
                    "grpcSectionName": "h",
                },
            },
            ep.MSG_GRPC_SECTION,
        ),
    ],
)
def test_invalid_specs_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        OnlineEndpointSpec.model_validate(_spec(**overrides))


def test_mirror_to_a_zero_traffic_deployment_is_allowed() -> None:
    spec = OnlineEndpointSpec.model_validate(
        _spec(traffic={"blue": 100, "green": 0}, mirror={"green": 25})
    )
    assert spec.mirror == {"green": 25}
