"""An endpoint's children in the cluster: the traffic backend's APIs, API keys, prune.

Children an operator from before hashed names made (`mlkube.builders.endpoint_upgrade`) are
pruned like any stale child, but only once the new Deployments are Available, and their API
keys carry over into the new keys Secret.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Collection, Iterator
from typing import Any, Final

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import CHILD_KINDS, uses_router
from mlkube.builders.endpoint_monitoring import MONITORING_API_VERSION
from mlkube.builders.endpoint_route import (
    GRPCROUTE_API_VERSION,
    HTTPROUTE_API_VERSION,
    grpc_parent_refs,
    parent_refs,
)
from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.endpoint_status import Blocker
from mlkube.builders.endpoint_upgrade import legacy_keys_secret_name, legacy_to_keep
from mlkube.builders.names import (
    EndpointRef,
    endpoint_selector,
    keys_secret_name,
    push_secret_name,
    selector_string,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.endpoint_ownership import is_ours
from mlkube.controllers.kube import ApiError, Kube
from mlkube.controllers.memo import FingerprintMemo
from mlkube.controllers.pass_reads import PassReads
from mlkube.reconcile.endpoint_changes import stale_children

RECHECK_MISSING_SECONDS: Final = 1.0
# After a 403 on GRPCRoutes (an operator upgraded before its ClusterRole, which lacks them):
# endpoints serve HTTP only and the operator asks again after this long.
RECHECK_FORBIDDEN_SECONDS: Final = 60.0

log = logging.getLogger(__name__)
_grpcroute_forbidden_until = 0.0  # monotonic time until which GRPCRoutes are not asked for


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


def grpc_route_warnings(spec: OnlineEndpointSpec, config: OperatorConfig) -> list[Blocker]:
    """spec.gateway.grpcSectionName naming the default Gateway's HTTP listener: the one case
    the API cannot refuse (it does not know MLKUBE_GATEWAY). There is no GRPCRoute; HTTP is
    served as usual, and Degraded says what to change (every status write computes it, so a
    refresh does not clear it)."""
    gateway, default = spec.gateway, config.default_gateway
    if uses_router(spec) or gateway is None or not gateway.grpc_section_name:
        return []
    if gateway.parent_refs or default is None:
        return []
    if default.section_name != gateway.grpc_section_name:
        return []
    message = (
        f"spec.gateway.grpcSectionName {gateway.grpc_section_name!r} is the listener the "
        "operator's default Gateway (MLKUBE_GATEWAY) attaches HTTPRoutes to, so there is no "
        "GRPCRoute (HTTP is served): name the Gateway's gRPC listener, or omit it to use the "
        "operator's MLKUBE_GATEWAY_GRPC_SECTION"
    )
    return [Blocker("GRPCListenerConflict", message, degraded=True)]


def has_httproute_api(kube: Kube) -> bool:
    # Asked afresh: only gateway endpoints ask, and one blocked on a missing CRD must see it
    # as soon as it is installed (the spec change that follows runs the pass at once).
    return "HTTPRoute" in kube.served_kinds(HTTPROUTE_API_VERSION, max_age=0)


def wants_grpcroute(spec: OnlineEndpointSpec, config: OperatorConfig, live: LiveChildren) -> bool:
    """A gateway-api endpoint with a gRPC listener whose pass could list GRPCRoutes (`live`,
    from `read_children`): a cluster whose Gateway API CRDs predate GRPCRoute (404) or an
    operator not allowed them (403) serves HTTP only, nothing fails, and the same pass sends
    no GRPCRoute request. Without it, prune removes a GRPCRoute made before (as when the
    endpoint leaves gateway-api)."""
    if uses_router(spec) or not grpc_parent_refs(spec, config):
        return False
    return (GRPCROUTE_API_VERSION, "GRPCRoute") in live


def grpcroutes_forbidden() -> bool:
    """The operator's ServiceAccount was refused GRPCRoutes lately (`read_children`)."""
    return time.monotonic() < _grpcroute_forbidden_until


def _forbid_grpcroutes(err: ApiError) -> None:
    """A 403 on GRPCRoutes fails no pass: an operator upgraded before its ClusterRole (a
    partial upgrade) serves HTTP as before, says why once a minute, and asks again then."""
    global _grpcroute_forbidden_until
    if not grpcroutes_forbidden():
        log.warning(
            "the operator may not list GRPCRoutes (%s): endpoints get no GRPCRoute until its "
            "ClusterRole allows grpcroutes (helm upgrade or dist/install.yaml)",
            err,
        )
    _grpcroute_forbidden_until = time.monotonic() + RECHECK_FORBIDDEN_SECONDS


def has_monitoring_api(kube: Kube) -> bool:
    """ServiceMonitor and PrometheusRule are both served (Prometheus Operator installed).

    A cached answer that lacks them is checked again once it is a second old: CRDs being
    installed (or seen half-removed) show up within a second, and a cluster without the
    Prometheus Operator costs one discovery request per second, not one per pass."""
    wanted = {"ServiceMonitor", "PrometheusRule"}
    if wanted <= kube.served_kinds(MONITORING_API_VERSION):
        return True
    return wanted <= kube.served_kinds(MONITORING_API_VERSION, max_age=RECHECK_MISSING_SECONDS)


def keys_secret_key(owner: EndpointRef) -> tuple[str, str, str]:
    """The API keys Secret: created once, then only ever changed by whoever rotates keys."""
    return ("v1", "Secret", keys_secret_name(owner.name))


def push_secret_key(owner: EndpointRef) -> tuple[str, str, str]:
    """The router config push key Secret: created once with a new key, never written again."""
    return ("v1", "Secret", push_secret_name(owner.name))


def initial_keys(kube: Kube, owner: EndpointRef) -> list[str]:
    """Keys for the keys Secret if it has to be created: those of the pre-hash Secret when this
    endpoint controls it (an operator upgrade keeps every client's key), else a new one. A
    Secret someone else controls is never used, whatever its name."""
    if kube.get("v1", "Secret", keys_secret_name(owner.name), owner.namespace) is not None:
        return [generate_key()]  # unused: the Secret exists (the pass reads it again for free)
    legacy = legacy_keys_secret(kube, owner)
    if legacy is not None and is_ours(legacy, owner):
        keys = read_keys(legacy)
        if keys:
            return keys
    return [generate_key()]


# Endpoint uids whose pre-hash keys Secret was found absent: only an operator from before
# hashed names created one, so it never comes back and the pass stops asking (bounded LRU).
_NO_LEGACY_SECRET: Final = FingerprintMemo[bool](size=20_000)


def legacy_keys_secret(kube: Kube, owner: EndpointRef) -> dict[str, Any] | None:
    """The pre-hash keys Secret, read until it is known to be absent for this endpoint."""
    if _NO_LEGACY_SECRET.get(owner.uid, None):
        return None
    found = kube.get("v1", "Secret", legacy_keys_secret_name(owner.name), owner.namespace)
    if found is None:
        _NO_LEGACY_SECRET.put(owner.uid, None, True)
    return found


def _secrets(kube: Kube, owner: EndpointRef) -> list[dict[str, Any]]:
    """The keys Secrets, current and pre-hash, and the push key Secret, carrying our labels:
    Secrets are never listed (least-privilege RBAC), an endpoint has at most these three."""
    labels = endpoint_selector(owner.name)
    found = []
    names = (keys_secret_name(owner.name), None, push_secret_name(owner.name))
    for name in names:
        if name is None:
            secret = legacy_keys_secret(kube, owner)
        else:
            secret = kube.get("v1", "Secret", name, owner.namespace)
        have = (secret or {}).get("metadata", {}).get("labels") or {}
        if secret is not None and all(have.get(k) == v for k, v in labels.items()):
            found.append(secret)
    return found


LiveChildren = dict[tuple[str, str], list[dict[str, Any]]]  # (apiVersion, kind) -> objects


def read_children(kube: Kube, owner: EndpointRef) -> LiveChildren:
    """The endpoint's children now: one LIST per kind by its labels (Secrets by name: never
    listed), kinds the cluster does not serve left out. In a pass (`PassReads`) the listed
    objects also answer the pass's GETs of them: writing the children then costs no GET per
    child, and prune lists nothing more (issue 15: 24 requests per idle pass before)."""
    selector = selector_string(endpoint_selector(owner.name))
    live: LiveChildren = {}
    for api_version, kind in CHILD_KINDS:
        if kind == "GRPCRoute" and grpcroutes_forbidden():
            continue
        try:
            if kind == "Secret":
                objects = _secrets(kube, owner)
            else:
                objects = kube.list(api_version, kind, owner.namespace, label_selector=selector)
        except ApiError as err:
            if err.status == 404:
                continue  # a kind the cluster does not serve (no Gateway API) holds nothing
            if err.status == 403 and kind == "GRPCRoute":
                _forbid_grpcroutes(err)
                continue
            raise
        live[api_version, kind] = objects
        if isinstance(kube, PassReads):
            kube.seed(api_version, kind, owner.namespace, objects)
    return live


def prune(
    kube: Kube,
    owner: EndpointRef,
    desired: set[tuple[str, str, str]],
    legacy: Collection[str] = frozenset(),
    live_children: LiveChildren | None = None,
) -> set[str]:
    """Delete this endpoint's children that the desired state no longer has: only objects
    carrying our managed-by label whose controller reference is this endpoint's uid.

    `live_children`: what `read_children` found at the start of this pass (under the
    endpoint's lock only this pass makes children of it, and what it made is desired); else
    they are read now. Stale children named in `legacy` (pre-hash names) are kept while the
    desired Deployments are not all Available; their names are returned (the caller looks
    again later).
    """
    if live_children is None:
        live_children = read_children(kube, owner)
    stale: list[tuple[str, str, str, str | None]] = []  # (apiVersion, kind, name, uid)
    for (api_version, kind), live in live_children.items():
        uids = {o["metadata"]["name"]: o["metadata"].get("uid") for o in live}
        for name in stale_children(live, api_version, kind, desired, owner.uid):
            stale.append((api_version, kind, name, uids.get(name)))
    held = legacy_to_keep({s[2] for s in stale}, legacy, _new_deployments(kube, owner, desired))
    for api_version, kind, name, uid in stale:
        if name in held:
            continue
        # uid precondition: if the name was freed and reused meanwhile, it is not ours
        try:
            kube.delete(api_version, kind, name, owner.namespace, uid=uid)
        except ApiError as err:
            if err.status != 409:
                raise
    return held


def _new_deployments(
    kube: Kube, owner: EndpointRef, desired: set[tuple[str, str, str]]
) -> Iterator[dict[str, Any] | None]:
    """The desired Deployments as they are now (read lazily: only when something is held)."""
    for api_version, kind, name in sorted(desired):
        if kind == "Deployment":
            yield kube.get(api_version, kind, name, owner.namespace)
