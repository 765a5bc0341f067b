"""An endpoint's children in the cluster: the traffic backend's APIs, new API keys, prune."""

from __future__ import annotations

import secrets

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import CHILD_KINDS, uses_router
from mlkube.builders.endpoint_monitoring import MONITORING_API_VERSION
from mlkube.builders.endpoint_route import HTTPROUTE_API_VERSION, parent_refs
from mlkube.builders.endpoint_status import Blocker
from mlkube.builders.names import (
    EndpointRef,
    endpoint_selector,
    keys_secret_name,
    selector_string,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.endpoint_changes import stale_children


def generate_key() -> str:
    """A new API key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def check_traffic_backend(
    kube: Kube, spec: OnlineEndpointSpec, config: OperatorConfig
) -> list[Blocker]:
    """The gateway-api backend needs a parent Gateway and the HTTPRoute CRD."""
    if uses_router(spec):
        return []
    problems = []
    if not parent_refs(spec, config):
        problems.append(
            Blocker(
                "GatewayNotConfigured",
                "no Gateway to attach the HTTPRoute to: set spec.gateway.parentRefs or the "
                "operator's MLKUBE_GATEWAY",
                degraded=True,
            )
        )
    if not has_httproute_api(kube):
        problems.append(
            Blocker(
                "GatewayAPIMissing",
                f"the cluster does not serve HTTPRoute ({HTTPROUTE_API_VERSION}): install the "
                "Gateway API CRDs or use trafficBackend router",
                degraded=True,
            )
        )
    return problems


def has_httproute_api(kube: Kube) -> bool:
    return "HTTPRoute" in kube.served_kinds(HTTPROUTE_API_VERSION)


def has_monitoring_api(kube: Kube) -> bool:
    """ServiceMonitor and PrometheusRule are both served (Prometheus Operator installed)."""
    return {"ServiceMonitor", "PrometheusRule"} <= kube.served_kinds(MONITORING_API_VERSION)


def keys_secret_key(owner: EndpointRef) -> tuple[str, str, str]:
    """The API keys Secret: created once, then only ever changed by whoever rotates keys."""
    return ("v1", "Secret", keys_secret_name(owner.name))


def prune(kube: Kube, owner: EndpointRef, desired: set[tuple[str, str, str]]) -> None:
    """Delete this endpoint's children that the desired state no longer has: only objects
    carrying our managed-by label whose controller reference is this endpoint's uid."""
    selector = selector_string(endpoint_selector(owner.name))
    for api_version, kind in CHILD_KINDS:
        try:
            if kind == "Secret":  # never listed (least-privilege RBAC): an endpoint owns one
                secret = kube.get(api_version, kind, keys_secret_name(owner.name), owner.namespace)
                live = [secret] if secret is not None else []
            else:
                live = kube.list(api_version, kind, owner.namespace, label_selector=selector)
        except ApiError as err:
            if err.status == 404:
                continue  # a kind the cluster does not serve (no Gateway API) holds nothing
            raise
        uids = {o["metadata"]["name"]: o["metadata"].get("uid") for o in live}
        for name in stale_children(live, api_version, kind, desired, owner.uid):
            # uid precondition: if the name was freed and reused meanwhile, it is not ours
            try:
                kube.delete(api_version, kind, name, owner.namespace, uid=uids.get(name))
            except ApiError as err:
                if err.status != 409:
                    raise
