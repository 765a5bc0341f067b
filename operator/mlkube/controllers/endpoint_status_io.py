"""Reading child Deployments into readiness and writing the OnlineEndpoint's status.

Only the status keys the endpoint reconcile owns are patched, and only what changed, as a
JSON merge patch (removed map keys sent as null), so other writers' fields survive and an
unchanged status costs no write.
"""

from __future__ import annotations

from typing import Any, Final

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import uses_router
from mlkube.builders.endpoint_status import (
    Blocker,
    WorkloadHealth,
    build_endpoint_status,
    workload_health,
)
from mlkube.builders.names import (
    EndpointRef,
    deployment_name,
    endpoint_selector,
    router_name,
    selector_string,
)
from mlkube.contract import API_VERSION, KIND_ONLINE_ENDPOINT
from mlkube.controllers.kube import Kube
from mlkube.reconcile.endpoint_changes import merge_patch
from mlkube.reconcile.kstatus import with_stalled

STATUS_KEYS: Final = (
    "url",
    "traffic",
    "mirror",
    "deployments",
    "conditions",
    "observedGeneration",
    "message",
)


def observe_deployments(
    kube: Kube, owner: EndpointRef, spec: OnlineEndpointSpec
) -> dict[str, WorkloadHealth | None]:
    selector = selector_string(endpoint_selector(owner.name))
    live = {
        d["metadata"]["name"]: d
        for d in kube.list("apps/v1", "Deployment", owner.namespace, label_selector=selector)
    }
    return {
        d.name: workload_health(live.get(deployment_name(owner.name, d.name)))
        for d in spec.deployments
    }


def observe_router(
    kube: Kube, owner: EndpointRef, spec: OnlineEndpointSpec
) -> WorkloadHealth | None:
    if not uses_router(spec):
        return None
    return workload_health(
        kube.get("apps/v1", "Deployment", router_name(owner.name), owner.namespace)
    )


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
        applied_traffic=status.get("traffic") or {},
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
