"""The Gateway API HTTPRoute of a `trafficBackend: gateway-api` endpoint.

The Gateway does what the router does otherwise: weighted backendRefs split live traffic,
RequestMirror filters (with `percent`) copy it, and one rule per deployment matching the
`x-mlkube-deployment` (or Azure's `azureml-model-deployment`) header targets a deployment
directly. Header rules are more specific than the catch-all rule, so the Gateway prefers them.
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
# HTTPRoute allows 16 rules: one catch-all plus at most 15 header-targeting rules.
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


def _backend(owner: EndpointRef, deployment: str) -> dict[str, Any]:
    return {"name": deployment_name(owner.name, deployment), "port": SERVICE_PORT}


def _header_rule(owner: EndpointRef, deployment: str) -> dict[str, Any]:
    return {
        "matches": [
            {"headers": [{"type": "Exact", "name": header, "value": deployment}]}
            for header in (c.HEADER_DEPLOYMENT, c.HEADER_AZUREML_DEPLOYMENT)
        ],
        "backendRefs": [{**_backend(owner, deployment), "weight": 1}],
    }


def build_httproute(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> dict[str, Any]:
    names = sorted(d.name for d in spec.deployments)
    split: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [
            {**_backend(owner, name), "weight": spec.traffic.get(name, 0)} for name in names
        ],
    }
    mirrors = [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": _backend(owner, name), "percent": pct},
        }
        for name, pct in sorted(spec.mirror.items())
        if pct > 0
    ]
    if mirrors:
        split["filters"] = mirrors
    rules = [_header_rule(owner, name) for name in names[:MAX_HEADER_RULES]]
    route_spec: dict[str, Any] = {"parentRefs": parent_refs(spec, config)}
    if spec.gateway is not None and spec.gateway.hostnames:
        route_spec["hostnames"] = list(spec.gateway.hostnames)
    route_spec["rules"] = [*rules, split]
    return {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": child_metadata(
            owner, service_name(owner.name), child_labels(owner.name, COMPONENT_ROUTE)
        ),
        "spec": route_spec,
    }


def route_url(spec: OnlineEndpointSpec) -> str | None:
    """The URL clients use through the Gateway, when the route names a host."""
    if spec.gateway is not None and spec.gateway.hostnames:
        host = spec.gateway.hostnames[0]
        return None if host.startswith("*") else f"http://{host}"
    return None
