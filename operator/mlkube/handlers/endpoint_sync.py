"""The I/O half of the OnlineEndpoint reconcile: read Models, apply children, prune, write status.

Level-based and idempotent: every run reads the endpoint afresh, builds the whole desired state
with the pure builders and server-side applies it, so a restarted operator (or a resync timer)
converges to the same objects without duplicates. Kopf specifics (retries, Events) stay in
`mlkube.handlers.endpoint`; this module reports them in an `Outcome`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import (
    CHILD_KINDS,
    build_endpoint_children,
    child_key,
    endpoint_url,
    uses_router,
)
from mlkube.builders.endpoint_monitoring import MONITORING_API_VERSION
from mlkube.builders.endpoint_route import HTTPROUTE_API_VERSION, parent_refs
from mlkube.builders.endpoint_router import build_keys_secret, read_keys
from mlkube.builders.endpoint_status import Blocker, build_endpoint_status, is_blocked
from mlkube.builders.model_facts import ModelFacts, ModelProblem, read_model
from mlkube.builders.names import (
    EndpointRef,
    endpoint_selector,
    keys_secret_name,
    selector_string,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.handlers.endpoint_status_io import (
    observe_deployments,
    observe_router,
    write_blocked_status,
    write_status,
)
from mlkube.k8s import ApiError, Kube
from mlkube.reconcile.endpoint_changes import (
    endpoint_reference,
    stale_children,
    traffic_events,
    with_reference,
)

KIND: Final = "OnlineEndpoint"
WAIT_DELAY: Final = 5.0  # Models being verified: look again soon
CONFLICT_RETRIES: Final = 5


class EndpointSyncError(Exception):
    """Base of the endpoint reconcile's own errors."""


@dataclass(frozen=True)
class Outcome:
    """What the Kopf layer should do after a reconcile: post Events, maybe retry later."""

    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    subject: dict[str, Any] | None = None  # the endpoint the Events are about
    retry_message: str | None = None
    retry_delay: float = WAIT_DELAY


def generate_key() -> str:
    """A new API key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def get_endpoint(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, KIND, name, namespace)
    if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return obj


def reconcile(kube: Kube, config: OperatorConfig, namespace: str, name: str, now: str) -> Outcome:
    """One full pass for the endpoint `namespace/name` (nothing to do if it is gone)."""
    obj = get_endpoint(kube, namespace, name)
    if obj is None:
        return Outcome()
    meta, status = obj["metadata"], obj.get("status") or {}
    owner = EndpointRef(name=name, namespace=namespace, uid=str(meta["uid"]))
    generation = int(meta.get("generation", 1))
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        blocker = Blocker("InvalidSpec", f"invalid spec: {err}", degraded=True)
        write_blocked_status(kube, obj, None, generation, [blocker], now)
        return Outcome()  # a spec change re-runs the handler
    sync_model_references(kube, namespace, name, {d.model for d in spec.deployments})
    models, blockers = read_models(kube, namespace, {d.model for d in spec.deployments})
    blockers += check_traffic_backend(kube, spec, config)
    if blockers:
        write_blocked_status(kube, obj, spec, generation, blockers, now)
        if any(b.degraded for b in blockers):
            # Only a human fixes these (a spec change re-runs the handler at once); no retry
            # loop, the Degraded condition says what to do and the resync timer looks again.
            return Outcome()
        return Outcome(retry_message="; ".join(b.message for b in blockers))
    keys = ensure_keys(kube, owner) if uses_router(spec) and spec.auth.mode == "key" else []
    monitoring = config.monitoring and has_monitoring_api(kube)
    children = build_endpoint_children(owner, spec, models, config, keys, monitoring)
    for child in children:
        kube.apply(child)
    prune(kube, owner, {child_key(c) for c in children})
    events = [("Normal", r, m) for r, m in traffic_events(status, spec.traffic, spec.mirror)]
    new_status = build_endpoint_status(
        spec=spec,
        generation=generation,
        url=endpoint_url(owner, spec, config),
        applied_traffic=spec.traffic,
        applied_mirror={k: v for k, v in spec.mirror.items() if v > 0},
        deployments=observe_deployments(kube, owner, spec),
        router=observe_router(kube, owner, spec),
        needs_router=uses_router(spec),
        blockers=[],
        previous=status,
        now=now,
    )
    write_status(kube, obj, new_status)
    subject = {"apiVersion": obj["apiVersion"], "kind": KIND, "metadata": meta}
    return Outcome(events=events, subject=subject)


def refresh_status(kube: Kube, namespace: str, name: str, now: str) -> None:
    """Re-read the child Deployments and update readiness (applied traffic is left as is)."""
    obj = get_endpoint(kube, namespace, name)
    if obj is None:
        return
    status = obj.get("status") or {}
    generation = int(obj["metadata"].get("generation", 1))
    if status.get("observedGeneration") != generation or is_blocked(status):
        return  # the reconcile of this generation has not applied yet: it writes the status
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return
    owner = EndpointRef(name=name, namespace=namespace, uid=str(obj["metadata"]["uid"]))
    new_status = build_endpoint_status(
        spec=spec,
        generation=generation,
        url=status.get("url"),
        applied_traffic=status.get("traffic") or {},
        applied_mirror=status.get("mirror") or {},
        deployments=observe_deployments(kube, owner, spec),
        router=observe_router(kube, owner, spec),
        needs_router=uses_router(spec),
        blockers=[],
        previous=status,
        now=now,
    )
    write_status(kube, obj, new_status)


def endpoints_waiting_for(kube: Kube, namespace: str, model: str) -> list[str]:
    """Endpoints that use `model` and stopped before applying (e.g. waiting for it)."""
    waiting = []
    for obj in kube.list(API_VERSION, KIND, namespace):
        deployments = (obj.get("spec") or {}).get("deployments") or []
        uses = any(d.get("model") == model for d in deployments)
        if uses and is_blocked(obj.get("status") or {}):
            waiting.append(str(obj["metadata"]["name"]))
    return waiting


def read_models(
    kube: Kube, namespace: str, names: Iterable[str]
) -> tuple[dict[str, ModelFacts], list[Blocker]]:
    models: dict[str, ModelFacts] = {}
    blockers = []
    for model in sorted(names):
        found = read_model(model, kube.get(API_VERSION, "Model", model, namespace))
        if isinstance(found, ModelProblem):
            blockers.append(
                Blocker(found.reason, found.message, degraded=found.reason == "ModelFailed")
            )
        else:
            models[model] = found
    return models, blockers


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


def serves_kinds(kube: Kube, api_version: str, kinds: set[str]) -> bool:
    """Asked afresh each time (not the client's discovery cache): CRDs come and go."""
    try:
        doc = kube.request("GET", f"/apis/{api_version}")
    except ApiError as err:
        if err.status == 404:
            return False
        raise
    return kinds <= {str(r.get("kind")) for r in doc.get("resources", [])}


def has_httproute_api(kube: Kube) -> bool:
    return serves_kinds(kube, HTTPROUTE_API_VERSION, {"HTTPRoute"})


def has_monitoring_api(kube: Kube) -> bool:
    """ServiceMonitor and PrometheusRule are both served (Prometheus Operator installed)."""
    return serves_kinds(kube, MONITORING_API_VERSION, {"ServiceMonitor", "PrometheusRule"})


def ensure_keys(kube: Kube, owner: EndpointRef) -> list[str]:
    """The endpoint's keys: kept from the existing Secret, generated once when there is none."""
    name = keys_secret_name(owner.name)
    keys = read_keys(kube.get("v1", "Secret", name, owner.namespace))
    if keys:
        return keys
    keys = [generate_key()]
    try:
        kube.create(build_keys_secret(owner, keys))
    except ApiError as err:
        if err.status != 409:
            raise
        # Created concurrently (or an empty one exists): keep whatever keys it holds.
        return read_keys(kube.get("v1", "Secret", name, owner.namespace)) or keys
    return keys


def prune(kube: Kube, owner: EndpointRef, desired: set[tuple[str, str, str]]) -> None:
    """Delete this endpoint's children that the desired state no longer has."""
    selector = selector_string(endpoint_selector(owner.name))
    for api_version, kind in CHILD_KINDS:
        try:
            live = kube.list(api_version, kind, owner.namespace, label_selector=selector)
        except ApiError as err:
            if err.status == 404:
                continue  # a kind the cluster does not serve (no Gateway API) holds nothing
            raise
        for name in stale_children(live, api_version, kind, desired, owner.uid):
            kube.delete(api_version, kind, name, owner.namespace)


def sync_model_references(kube: Kube, namespace: str, endpoint: str, referenced: set[str]) -> None:
    """Make every Model's `status.deployedBy` list this endpoint exactly when it uses the Model."""
    ref = endpoint_reference(endpoint, namespace)
    for model in kube.list(API_VERSION, "Model", namespace):
        name = model["metadata"]["name"]
        refs = (model.get("status") or {}).get("deployedBy") or []
        if with_reference(refs, ref, name in referenced) is not None:
            update_deployed_by(kube, namespace, name, ref, name in referenced, model)


def update_deployed_by(
    kube: Kube,
    namespace: str,
    name: str,
    ref: dict[str, str],
    present: bool,
    model: dict[str, Any] | None,
) -> None:
    """Add or remove `ref`, guarded by resourceVersion so concurrent endpoints never lose one."""
    for _ in range(CONFLICT_RETRIES):
        if model is None:
            return
        refs = (model.get("status") or {}).get("deployedBy") or []
        new = with_reference(refs, ref, present)
        if new is None:
            return
        body = {
            "metadata": {"resourceVersion": model["metadata"]["resourceVersion"]},
            "status": {"deployedBy": new},
        }
        try:
            kube.patch(API_VERSION, "Model", name, body, namespace, subresource="status")
            return
        except ApiError as err:
            if err.status == 404:
                return
            if err.status != 409:
                raise
        model = kube.get(API_VERSION, "Model", name, namespace)
    raise EndpointSyncError(f"Model {namespace}/{name}: deployedBy kept conflicting; will retry")


def finalize(kube: Kube, namespace: str, name: str, uid: str) -> None:
    """The endpoint is going away: delete its children, drop it from every Model's deployedBy.

    Owner references would let the garbage collector remove the children too, but only once
    the collector has discovered the OnlineEndpoint kind (up to 30 s after the CRD appears);
    deleting them here makes removal prompt and independent of that. Idempotent.
    """
    prune(kube, EndpointRef(name=name, namespace=namespace, uid=uid), set())
    sync_model_references(kube, namespace, name, set())
