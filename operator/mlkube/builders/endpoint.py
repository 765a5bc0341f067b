"""Every child object of an OnlineEndpoint, from its spec, its Models and the operator config.

`build_endpoint_children` is the whole desired state: the handler server-side applies each
object and deletes labelled children that are not in the list (a removed deployment). The
same function computes what integration tests expect to find in the cluster. Each child
carries the digest of its own manifest (`reconcile.apply_needed.MANIFEST_DIGEST`): it tells a
child created by one POST and never changed since from one whose manifest changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_logger import LogDestination, destination_of
from mlkube.builders.endpoint_monitoring import MONITORING_API_VERSION, build_monitoring_children
from mlkube.builders.endpoint_route import (
    GRPCROUTE_API_VERSION,
    HTTPROUTE_API_VERSION,
    build_grpcroute,
    build_httproute,
    route_url,
)
from mlkube.builders.endpoint_router import build_router_children
from mlkube.builders.endpoint_server import build_deployment_children
from mlkube.builders.environment_use import EnvironmentUse
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef, service_host, service_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.reconcile.apply_needed import with_manifest_digest

# Kinds an endpoint may own, in apply order (config and Secrets before the pods that mount them).
CHILD_KINDS: Final = (
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    (HTTPROUTE_API_VERSION, "HTTPRoute"),
    (GRPCROUTE_API_VERSION, "GRPCRoute"),
    (MONITORING_API_VERSION, "ServiceMonitor"),
    (MONITORING_API_VERSION, "PrometheusRule"),
)


def uses_router(spec: OnlineEndpointSpec) -> bool:
    return spec.traffic_backend == "router"


def build_endpoint_children(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    models: Mapping[str, ModelFacts],
    config: OperatorConfig,
    keys: list[str],
    monitoring: bool = False,
    *,
    router_revision: int = 1,
    push_key: str | None = None,
    environments: Mapping[str, EnvironmentUse] | None = None,
    loggers: Mapping[str, LogDestination] | None = None,
    grpc_route: bool = False,
) -> list[dict[str, Any]]:
    """All children; `models` maps each referenced Model object name to its verified facts.

    `monitoring`: the cluster serves the Prometheus Operator kinds and the operator may use them.
    `router_revision`: the router config's revision (`reconcile.router_revision`); `push_key`:
    the config push key for a new push Secret (None: the Secret is not among the children);
    `environments`: deployment name -> the resolved environment its server runs on;
    `loggers`: deployment name -> its resolved EventSink payload log destination (loggers
    with a `url` need none); `grpc_route`: the cluster serves GRPCRoute (a gateway-api
    endpoint with a gRPC listener then gets one next to its HTTPRoute).
    """
    children: list[dict[str, Any]] = []
    for dep in spec.deployments:
        environment = (environments or {}).get(dep.name)
        destination = destination_of(dep, loggers)
        children.extend(
            build_deployment_children(
                owner, dep, models[dep.model], config, environment, destination
            )
        )
    if uses_router(spec):
        children.extend(
            build_router_children(
                owner, spec, config, keys, revision=router_revision, push_key=push_key
            )
        )
    else:
        children.append(build_httproute(owner, spec, config))
        grpc = build_grpcroute(owner, spec, config) if grpc_route else None
        if grpc is not None:
            children.append(grpc)
    if monitoring:
        children.extend(build_monitoring_children(owner, spec, config))
    order = {kind: index for index, kind in enumerate(CHILD_KINDS)}
    ordered = sorted(children, key=lambda obj: order[(obj["apiVersion"], obj["kind"])])
    return [with_manifest_digest(child) for child in ordered]


def endpoint_url(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> str | None:
    """status.url: the router Service's cluster DNS name, or the Gateway host name."""
    if uses_router(spec):
        host = service_host(service_name(owner.name), owner.namespace, config.cluster_domain)
        return f"http://{host}"
    return route_url(spec)


def child_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(apiVersion, kind, name): how children are matched between desired and live state."""
    return (str(obj["apiVersion"]), str(obj["kind"]), str(obj["metadata"]["name"]))
