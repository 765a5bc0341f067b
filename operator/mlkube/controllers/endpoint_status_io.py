"""Reading child Deployments (and their pods while not available) into readiness, and
writing the OnlineEndpoint's status.

Only the status keys the endpoint reconcile owns are patched, and only what changed, as a
JSON merge patch (removed map keys sent as null), so other writers' fields survive and an
unchanged status costs no write.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final, TypeGuard

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import uses_router
from mlkube.builders.endpoint_status import (
    Blocker,
    WorkloadHealth,
    build_endpoint_status,
    workload_health,
)
from mlkube.builders.names import (
    COMPONENT_ROUTER,
    COMPONENT_SERVER,
    EndpointRef,
    deployment_name,
    endpoint_selector,
    pod_selector,
    router_name,
    selector_string,
)
from mlkube.builders.pod_problems import first_problem
from mlkube.contract import API_VERSION, KIND_ONLINE_ENDPOINT, LABEL_DEPLOYMENT
from mlkube.controllers.kube import Kube
from mlkube.reconcile.endpoint_changes import merge_patch
from mlkube.reconcile.kstatus import with_stalled

STATUS_KEYS: Final = (
    "url",
    "traffic",
    "mirror",
    "lastTrafficChange",
    "deployments",
    "conditions",
    "observedGeneration",
    "message",
)


def _pods_of(kube: Kube, owner: EndpointRef, component: str) -> dict[str, list[dict[str, Any]]]:
    """The endpoint's pods of one component, by their deployment label ("" for the router)."""
    selector = selector_string(pod_selector(owner.name, component))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for pod in kube.list("v1", "Pod", owner.namespace, label_selector=selector):
        labels = (pod.get("metadata") or {}).get("labels") or {}
        grouped.setdefault(str(labels.get(LABEL_DEPLOYMENT, "")), []).append(pod)
    return grouped


def _needs_pods(health: WorkloadHealth | None) -> TypeGuard[WorkloadHealth]:
    # Pods are read only while something is not available: a healthy endpoint costs no list.
    return health is not None and not health.available and health.failure is None


def _by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects}


def _live_deployments(kube: Kube, owner: EndpointRef) -> dict[str, dict[str, Any]]:
    """The endpoint's Deployments (model servers and router) by name: one labelled LIST."""
    selector = selector_string(endpoint_selector(owner.name))
    return _by_name(kube.list("apps/v1", "Deployment", owner.namespace, label_selector=selector))


def live_deployments(
    kube: Kube, owner: EndpointRef, listed: list[dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The endpoint's Deployments by name: `listed` (a LIST this pass made), else listed now."""
    return _live_deployments(kube, owner) if listed is None else _by_name(listed)


def observe_deployments(
    kube: Kube,
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    live: dict[str, dict[str, Any]] | None = None,
) -> dict[str, WorkloadHealth | None]:
    """Health of each spec deployment (`live`: the endpoint's Deployments, listed if None)."""
    if live is None:
        live = _live_deployments(kube, owner)
    healths = {
        d.name: workload_health(live.get(deployment_name(owner.name, d.name)))
        for d in spec.deployments
    }
    if not any(_needs_pods(h) for h in healths.values()):
        return healths
    pods = _pods_of(kube, owner, COMPONENT_SERVER)
    return {
        name: replace(h, pods=first_problem(pods.get(name, []))) if _needs_pods(h) else h
        for name, h in healths.items()
    }


def observe_router(
    kube: Kube, owner: EndpointRef, spec: OnlineEndpointSpec, live: dict[str, dict[str, Any]]
) -> WorkloadHealth | None:
    """The router Deployment's health (`live`: the endpoint's Deployments by name)."""
    if not uses_router(spec):
        return None
    health = workload_health(live.get(router_name(owner.name)))
    if health is None or not _needs_pods(health):
        return health
    pods = [p for group in _pods_of(kube, owner, COMPONENT_ROUTER).values() for p in group]
    return replace(health, pods=first_problem(pods))


def observe_workloads(
    kube: Kube,
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    listed: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, WorkloadHealth | None], WorkloadHealth | None]:
    """(the deployments' health, the router's) from one LIST of the endpoint's Deployments:
    the router is among them, so a status costs no GET of it (issue 15: one request fewer
    per traffic change, ~1,000 at 1,000 endpoints). `listed`: that LIST as this pass made it
    already, when it wrote no Deployment since (an idle pass: a restart's, a resync's)."""
    live = _live_deployments(kube, owner) if listed is None else _by_name(listed)
    return observe_deployments(kube, owner, spec, live), observe_router(kube, owner, spec, live)


def write_blocked_status(
    kube: Kube,
    obj: dict[str, Any],
    spec: OnlineEndpointSpec | None,
    generation: int,
    blockers: list[Blocker],
    now: str,
) -> None:
    """Status while the children cannot be applied: the previously applied split stays."""
    status = obj.get("status") or {}
    meta = obj["metadata"]
    owner = EndpointRef(name=meta["name"], namespace=meta["namespace"], uid=str(meta["uid"]))
    new_status = build_endpoint_status(
        spec=spec or OnlineEndpointSpec(),
        generation=generation,
        url=status.get("url"),
        applied_traffic=status.get("traffic"),  # absent while none was applied
        applied_mirror=status.get("mirror") or {},
        deployments=observe_deployments(kube, owner, spec) if spec else {},
        router=None,
        needs_router=False,
        blockers=blockers,
        previous=status,
        now=now,
    )
    write_status(kube, obj, new_status, now)


def write_status(kube: Kube, obj: dict[str, Any], desired: dict[str, Any], now: str) -> None:
    """Merge-patch only the status keys this module owns, and only what changed."""
    if "conditions" in desired:
        generation = desired.get("observedGeneration")
        conditions = with_stalled(list(desired["conditions"]), generation, now)
        desired = {**desired, "conditions": conditions}
    previous = obj.get("status") or {}
    owned_previous = {k: previous[k] for k in STATUS_KEYS if k in previous}
    owned_desired = {k: v for k, v in desired.items() if k in STATUS_KEYS and v is not None}
    patch = merge_patch(owned_previous, owned_desired)
    if "rollout" in desired and "rollout" not in previous:
        patch["rollout"] = desired["rollout"]  # the first deploy's (rollout_effective)
    if patch:
        meta = obj["metadata"]
        kube.patch(
            API_VERSION,
            KIND_ONLINE_ENDPOINT,
            meta["name"],
            {"status": patch},
            meta["namespace"],
            subresource="status",
        )
