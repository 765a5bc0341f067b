"""The Gateway API routes of a `trafficBackend: gateway-api` endpoint: an HTTPRoute, and a
GRPCRoute for the model servers' Open Inference Protocol over gRPC.

The Gateway does what the router does otherwise: weighted backendRefs split live traffic,
RequestMirror filters (with `percent`) copy it, and one rule per deployment matching the
`x-mlkube-deployment` (or Azure's `azureml-model-deployment`) header targets a deployment
directly. Header rules are more specific than the catch-all rule, so the Gateway prefers them.

The GRPCRoute has the same rules on each Service's `grpc` port and attaches to its own
listener (`grpc_section_name`): a Gateway does not attach an HTTPRoute and a GRPCRoute with the
same host name to one listener. Without such a listener there is no GRPCRoute.
"""

from __future__ import annotations

from typing import Any, Final

from mlkube import contract as c
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_server import SERVICE_PORT
from mlkube.builders.names import (
    COMPONENT_ROUTE,
    EndpointRef,
    child_labels,
    child_metadata,
    deployment_name,
    service_name,
)
from mlkube.builders.operator_config import GatewayParent, OperatorConfig

GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
HTTPROUTE_API_VERSION: Final = f"{GATEWAY_GROUP}/v1"
GRPCROUTE_API_VERSION: Final = f"{GATEWAY_GROUP}/v1"
# HTTPRoute and GRPCRoute each allow 16 rules: one catch-all plus at most 15 header-targeting
# rules (with 2 matches each, also well within their 128 matches per route).
MAX_HEADER_RULES: Final = 15


def parent_refs(spec: OnlineEndpointSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    """The endpoint's parentRefs, else the operator's default Gateway, else none."""
    if spec.gateway is not None and spec.gateway.parent_refs:
        parents = [
            GatewayParent(name=p.name, namespace=p.namespace, section_name=p.section_name)
            for p in spec.gateway.parent_refs
        ]
    elif config.default_gateway is not None:
        parents = [config.default_gateway]
    else:
        return []
    refs = []
    for parent in parents:
        ref: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": parent.name}
        if parent.namespace:
            ref["namespace"] = parent.namespace
        if parent.section_name:
            ref["sectionName"] = parent.section_name
        refs.append(ref)
    return refs


def grpc_section_name(spec: OnlineEndpointSpec, config: OperatorConfig) -> str | None:
    """The listener the GRPCRoute attaches to: `spec.gateway.grpcSectionName`, else the
    operator's default gRPC listener when the endpoint uses the operator's default Gateway,
    else None (no GRPCRoute: the operator cannot know other Gateways' listeners)."""
    gateway = spec.gateway
    if gateway is not None and gateway.grpc_section_name:
        return gateway.grpc_section_name
    if gateway is not None and gateway.parent_refs:
        return None
    return config.default_grpc_section if config.default_gateway is not None else None


def grpc_parent_refs(spec: OnlineEndpointSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    """The HTTPRoute's parent Gateways, each at the gRPC listener; none without one. A parent
    whose HTTP listener is that very listener is left out (only the default Gateway can be:
    the API refuses it in spec.gateway)."""
    section = grpc_section_name(spec, config)
    if section is None:
        return []
    return [
        {**ref, "sectionName": section}
        for ref in parent_refs(spec, config)
        if ref.get("sectionName") != section
    ]


def _backend(owner: EndpointRef, deployment: str, port: int) -> dict[str, Any]:
    return {"name": deployment_name(owner.name, deployment), "port": port}


def _header_rule(owner: EndpointRef, deployment: str, port: int) -> dict[str, Any]:
    return {
        "matches": [
            {"headers": [{"type": "Exact", "name": header, "value": deployment}]}
            for header in (c.HEADER_DEPLOYMENT, c.HEADER_AZUREML_DEPLOYMENT)
        ],
        "backendRefs": [{**_backend(owner, deployment, port), "weight": 1}],
    }


def _rules(
    owner: EndpointRef, spec: OnlineEndpointSpec, port: int, split: dict[str, Any]
) -> list[dict[str, Any]]:
    """Header-targeting rules, then the catch-all `split` rule given its matches: weighted
    backendRefs and RequestMirror filters on `port`."""
    names = sorted(d.name for d in spec.deployments)
    split = {
        **split,
        "backendRefs": [
            {**_backend(owner, name, port), "weight": spec.traffic.get(name, 0)} for name in names
        ],
    }
    mirrors = [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": _backend(owner, name, port), "percent": pct},
        }
        for name, pct in sorted(spec.mirror.items())
        if pct > 0
    ]
    if mirrors:
        split["filters"] = mirrors
    return [*(_header_rule(owner, name, port) for name in names[:MAX_HEADER_RULES]), split]


def _route(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    api_version: str,
    kind: str,
    parents: list[dict[str, Any]],
    rules: list[dict[str, Any]],
) -> dict[str, Any]:
    route_spec: dict[str, Any] = {"parentRefs": parents}
    if spec.gateway is not None and spec.gateway.hostnames:
        route_spec["hostnames"] = list(spec.gateway.hostnames)
    route_spec["rules"] = rules
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": child_metadata(
            owner, service_name(owner.name), child_labels(owner.name, COMPONENT_ROUTE)
        ),
        "spec": route_spec,
    }


def build_httproute(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> dict[str, Any]:
    catch_all = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    rules = _rules(owner, spec, SERVICE_PORT, catch_all)
    return _route(owner, spec, HTTPROUTE_API_VERSION, "HTTPRoute", parent_refs(spec, config), rules)


def build_grpcroute(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> dict[str, Any] | None:
    """The GRPCRoute to the Services' `grpc` ports, or None when no gRPC listener (or no
    Gateway) is known. A rule without matches matches every gRPC request."""
    parents = grpc_parent_refs(spec, config)
    if not parents:
        return None
    rules = _rules(owner, spec, c.SERVER_GRPC_PORT, {})
    return _route(owner, spec, GRPCROUTE_API_VERSION, "GRPCRoute", parents, rules)


def route_url(spec: OnlineEndpointSpec) -> str | None:
    """The URL clients use through the Gateway, when the route names a host."""
    if spec.gateway is not None and spec.gateway.hostnames:
        host = spec.gateway.hostnames[0]
        return None if host.startswith("*") else f"http://{host}"
    return None
