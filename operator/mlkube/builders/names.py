"""Names, labels and owner references of an endpoint's children.

Every child name is a pure function of the endpoint and deployment names, so a restarted
operator finds (and server-side applies over) the objects it made before instead of creating
duplicates. Names must also be collision-free across endpoints: plain joining made endpoint
`fraud` + deployment `v2` and endpoint `fraud-v2` both want Service `fraud-v2`. So only the
endpoint's own Service (and HTTPRoute, ServiceMonitor, PrometheusRule) is named after the
endpoint alone; every derived name ends in a hash of its role and parts, e.g.
`credit-blue-5f0c1a2e`, which no other (endpoint, role, deployment) produces. Kubernetes
limits Service names to DNS-1035 labels (63 characters, starting with a letter) and label
values to 63 characters; the readable head is shortened to fit, never the hash. A name that
is nevertheless taken (someone chose it on purpose) is never touched: the controller checks
the controller owner reference before writing (NameConflict).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube.contract import (
    API_VERSION,
    KIND_ONLINE_ENDPOINT,
    LABEL_COMPONENT,
    LABEL_DEPLOYMENT,
    LABEL_ENDPOINT,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)

COMPONENT_SERVER: Final = "model-server"
COMPONENT_ROUTER: Final = "router"
COMPONENT_KEYS: Final = "keys"
COMPONENT_PUSH_KEY: Final = "push-key"
COMPONENT_ROUTE: Final = "route"
ENDPOINT_KIND: Final = KIND_ONLINE_ENDPOINT

_MAX_NAME: Final = 63
_HASH_LENGTH: Final = 8
_DNS1035: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class EndpointRef:
    """The owning OnlineEndpoint: what every child needs to name and own itself."""

    name: str
    namespace: str
    uid: str


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]


def dns_name(*parts: str) -> str:
    """`parts` joined by '-' as a DNS-1035 label; shortened with a hash suffix when needed."""
    joined = "-".join(parts)
    if len(joined) <= _MAX_NAME and _DNS1035.match(joined):
        return joined
    cleaned = re.sub(r"[^a-z0-9-]+", "-", joined.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "e-" + cleaned
    head = cleaned[: _MAX_NAME - _HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{_digest(joined)}"


def derived_name(role: str, endpoint: str, *parts: str) -> str:
    """`endpoint-parts-<hash>` as a DNS-1035 label; the hash covers the role and every part
    separately (a NUL cannot occur in a name), so no two (role, endpoint, parts) share it."""
    suffix = _digest("\0".join((role, endpoint, *parts)))
    cleaned = re.sub(r"[^a-z0-9-]+", "-", "-".join((endpoint, *parts)).lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "e-" + cleaned
    head = cleaned[: _MAX_NAME - _HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{suffix}"


def label_value(value: str) -> str:
    """`value` when it is a valid label value, else a shortened one with a hash suffix."""
    if len(value) <= _MAX_NAME and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")
    head = cleaned[: _MAX_NAME - _HASH_LENGTH - 1].rstrip("-_.")
    return f"{head}-{_digest(value)}" if head else _digest(value)


def deployment_name(endpoint: str, deployment: str) -> str:
    """Deployment, Service, HPA and PDB of one endpoint deployment, e.g. credit-blue-<hash>."""
    return derived_name("deployment", endpoint, deployment)


def router_name(endpoint: str) -> str:
    """Router Deployment, its ConfigMap and PDB, e.g. credit-router-<hash>."""
    return derived_name("router", endpoint, "router")


def service_name(endpoint: str) -> str:
    """The endpoint's stable Service (and HTTPRoute), e.g. credit."""
    return dns_name(endpoint)


def keys_secret_name(endpoint: str) -> str:
    """The Secret holding the endpoint's API keys, e.g. credit-keys-<hash>."""
    return derived_name("keys", endpoint, "keys")


def push_secret_name(endpoint: str) -> str:
    """The Secret holding the router config push key, e.g. credit-push-<hash>."""
    return derived_name("push", endpoint, "push")


def endpoint_selector(endpoint: str) -> dict[str, str]:
    """Labels every child of the endpoint carries (used to list children for pruning)."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ENDPOINT: label_value(endpoint)}


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def pod_selector(endpoint: str, component: str, deployment: str | None = None) -> dict[str, str]:
    """The immutable Deployment selector (and Service selector) of one component's pods."""
    labels = {LABEL_ENDPOINT: label_value(endpoint), LABEL_COMPONENT: component}
    if deployment is not None:
        labels[LABEL_DEPLOYMENT] = deployment
    return labels


def child_labels(endpoint: str, component: str, deployment: str | None = None) -> dict[str, str]:
    return {**endpoint_selector(endpoint), **pod_selector(endpoint, component, deployment)}


def owner_reference(owner: EndpointRef) -> dict[str, Any]:
    """Controller reference: children are garbage-collected with the endpoint."""
    return {
        "apiVersion": API_VERSION,
        "kind": ENDPOINT_KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_owner(meta: Mapping[str, Any], kind: str) -> str | None:
    """The name of the mlkube `kind` that controls this object (ownerReferences), or None."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and (ref.get("apiVersion"), ref.get("kind")) == (
            API_VERSION,
            kind,
        ):
            return str(ref.get("name"))
    return None


def child_metadata(
    owner: EndpointRef, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def service_host(name: str, namespace: str, cluster_domain: str) -> str:
    return f"{name}.{namespace}.svc.{cluster_domain}"
