"""The OnlineEndpoint controller: read Models, apply children, prune, write status.

Level-based and idempotent: every run reads the endpoint afresh, builds the whole desired state
with the pure builders and server-side applies it, so a restarted operator (or a resync loop)
converges to the same objects without duplicates. Kopf specifics (retries, Events) stay in
`mlkube.handlers.endpoint`; this module reports them in an `Outcome`.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children, child_key, endpoint_url, uses_router
from mlkube.builders.endpoint_rollout_status import with_rollout_conditions
from mlkube.builders.endpoint_status import Blocker, build_endpoint_status, is_blocked
from mlkube.builders.endpoint_upgrade import legacy_child_names
from mlkube.builders.environment_use import EnvironmentUse
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef, label_value
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION, KIND_ONLINE_ENDPOINT
from mlkube.controllers.endpoint_children import (
    check_traffic_backend,
    generate_key,
    grpc_route_warnings,
    has_monitoring_api,
    initial_keys,
    keys_secret_key,
    prune,
    push_secret_key,
    read_children,
    wants_grpcroute,
)
from mlkube.controllers.endpoint_logger import logger_destinations
from mlkube.controllers.endpoint_models import (
    read_models,
    repair_deployed_by,
    sync_model_references,
)
from mlkube.controllers.endpoint_ownership import write_children
from mlkube.controllers.endpoint_status_io import (
    live_deployments,
    observe_workloads,
    write_blocked_status,
    write_status,
)
from mlkube.controllers.environment_refs import deployment_environments
from mlkube.controllers.kube import Kube
from mlkube.controllers.model_environments import record_model_environments
from mlkube.controllers.observed_deployments import record_observed
from mlkube.controllers.pass_reads import PassReads
from mlkube.controllers.router_poll import verify_traffic
from mlkube.controllers.router_push import RouterConfigPlan, plan_router_config
from mlkube.reconcile.endpoint_changes import traffic_events
from mlkube.reconcile.rollout_effective import (
    effective_spec,
    initial_deploy,
    is_current,
    read_rollout,
    running_split,
)
from mlkube.reconcile.router_config import RELOADING, TrafficVerdict

WAIT_DELAY: Final = 5.0  # Models being verified: look again soon
# Blockers that end when a Model turns Ready (an event the Kopf layer reacts to).
MODEL_WAITS: Final = frozenset({"ModelNotFound", "ModelNotReady"})


@dataclass(frozen=True)
class Outcome:
    """What the Kopf layer should do after a reconcile: post Events, maybe retry later."""

    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    subject: dict[str, Any] | None = None  # the endpoint the Events are about
    retry_message: str | None = None
    retry_delay: float = WAIT_DELAY
    # The Models of an endpoint left blocked: a Model turning Ready reconciles it at once.
    waiting_for: frozenset[str] = frozenset()
    # Blocked only by Models not (yet) Ready: that wake-up is the retry, not a timer.
    models_wake: bool = False
    # A traffic fast path wrote this generation's router config and left its status to
    # `endpoint_traffic.write_traffic_status`, run after it (handlers/endpoint.py).
    status_for: tuple[str, int] | None = None  # (uid, generation)


def get_endpoint(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, KIND_ONLINE_ENDPOINT, name, namespace)
    if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return obj


def parse_now(now: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(now.replace("Z", "+00:00"))


def format_now(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_spec(obj: dict[str, Any], spec: OnlineEndpointSpec, now: str) -> OnlineEndpointSpec:
    """The spec with the rollout's running split applied: what the children are built from
    and what the routers must serve (docs/rollouts.md §2)."""
    split = running_split(spec, obj.get("status") or {}, parse_now(now))
    return effective_spec(spec, split)


def status_models(status: Mapping[str, Any] | None) -> set[str]:
    """The Models the last written status says the endpoint's deployments use."""
    deployments = (status or {}).get("deployments") or []
    return {str(d["model"]) for d in deployments if isinstance(d, dict) and d.get("model")}


def reconcile(kube: Kube, config: OperatorConfig, namespace: str, name: str, now: str) -> Outcome:
    """One full pass for the endpoint `namespace/name` (nothing to do if it is gone).

    The pass reads through `PassReads`: each object is read once per pass (pass_reads.py)."""
    kube = PassReads(kube)
    obj = get_endpoint(kube, namespace, name)
    if obj is None:
        return Outcome()
    meta = obj["metadata"]
    owner = EndpointRef(name=name, namespace=namespace, uid=str(meta["uid"]))
    generation = int(meta.get("generation", 1))
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        blocker = Blocker("InvalidSpec", f"invalid spec: {err}", degraded=True)
        write_blocked_status(kube, obj, None, generation, [blocker], now)
        return Outcome()  # a spec change re-runs the handler
    status = obj.get("status")
    referenced = {d.model for d in spec.deployments}
    sync_model_references(kube, namespace, name, referenced, previous=status_models(status))
    models, blockers = read_models(kube, namespace, referenced)  # read once: PassReads
    environments, env_blockers = deployment_environments(
        kube, namespace, spec, config, status, generation
    )
    loggers, logger_blockers = logger_destinations(kube, namespace, spec, config)
    blockers += env_blockers + logger_blockers + check_traffic_backend(kube, spec, config)
    if blockers:
        write_blocked_status(kube, obj, spec, generation, blockers, now)
        if any(b.degraded for b in blockers):
            # Only a human fixes these (a spec change re-runs the handler at once); no retry
            # loop, the Degraded condition says what to do and the resync loop looks again.
            return Outcome(waiting_for=frozenset(referenced))
        message = "; ".join(b.message for b in blockers)
        wake = all(b.reason in MODEL_WAITS for b in blockers)
        return Outcome(retry_message=message, waiting_for=frozenset(referenced), models_wake=wake)
    live_children = read_children(kube, owner)  # also answers the GETs below (PassReads)
    # Keys are used for a new Secret only: an existing one is the source of truth.
    keys = initial_keys(kube, owner) if uses_router(spec) and spec.auth.mode == "key" else []
    monitoring = config.monitoring and has_monitoring_api(kube)
    running = running_spec(obj, spec, now)
    # The router config's revision comes from the live ConfigMap; the push key is only used
    # if its Secret has to be created (create-only: an existing one is the source of truth).
    plan = (
        plan_router_config(kube, owner, running, config, time.time()) if uses_router(spec) else None
    )
    children = build_endpoint_children(
        owner, running, models, config, keys, monitoring,
        router_revision=plan.revision if plan else 1,
        push_key=generate_key() if plan else None, environments=environments,
        loggers=loggers, grpc_route=wants_grpcroute(running, config, live_children),
    )  # fmt: skip
    create_only = {keys_secret_key(owner), push_secret_key(owner)}
    conflicts = write_children(kube, owner, children, create_only=create_only)
    if conflicts:
        write_blocked_status(kube, obj, spec, generation, conflicts, now)
        # A human renames or removes the object; the resync loop looks again.
        return Outcome(waiting_for=frozenset(referenced))
    legacy = legacy_child_names(name, [d.name for d in spec.deployments])
    held = prune(kube, owner, {child_key(c) for c in children}, legacy, live_children)
    # An idle pass (a restart's resume, a resync) wrote no Deployment: its LIST above is the
    # status's view too (one LIST per endpoint fewer: 1,000 requests per resync at 1,000).
    listed = None
    if isinstance(kube, PassReads) and ("apps/v1", "Deployment") not in kube.written_kinds:
        listed = live_children.get(("apps/v1", "Deployment"))
    verdict, events = observe_and_write_status(
        kube, config, obj, spec, owner, endpoint_url(owner, spec, config), now, running,
        plan.as_written() if plan else None, models, environments, listed,
    )  # fmt: skip
    used = [(d.name, d.model, environments.get(d.name)) for d in spec.deployments]
    record_model_environments(kube, namespace, name, used)
    subject = {"apiVersion": obj["apiVersion"], "kind": KIND_ONLINE_ENDPOINT, "metadata": meta}
    if verdict is not None and verdict.reason == RELOADING:
        # Nothing else fires when a router reloads its file: look again soon. (Routers that
        # become Ready fire Deployment events, and refresh_status checks them then.)
        return Outcome(events=events, subject=subject, retry_message=verdict.message)
    if held:
        # Children of the operator before hashed names serve until the new ones are Available;
        # the new Deployments' events only refresh the status, so look again.
        message = f"keeping {', '.join(sorted(held))} until the new Deployments are Available"
        return Outcome(events=events, subject=subject, retry_message=message)
    return Outcome(events=events, subject=subject)


def applied_split(
    spec: OnlineEndpointSpec, status: dict[str, Any], verdict: TrafficVerdict | None
) -> tuple[dict[str, int] | None, dict[str, int]]:
    """(traffic, mirror) to report as applied: the spec's once the routers serve it (or when
    it cannot be checked: gateway backend, routers outside the pod networks), else the last;
    traffic None while none has been (the status has no `traffic` yet)."""
    if verdict is None or verdict.applied is not False:
        return dict(spec.traffic), {k: v for k, v in spec.mirror.items() if v > 0}
    if "traffic" not in status:
        return None, {}
    return dict(status.get("traffic") or {}), dict(status.get("mirror") or {})


def observe_and_write_status(
    kube: Kube,
    config: OperatorConfig,
    obj: dict[str, Any],
    spec: OnlineEndpointSpec,
    owner: EndpointRef,
    url: str | None,
    now: str,
    running: OnlineEndpointSpec | None = None,
    plan: RouterConfigPlan | None = None,
    models: Mapping[str, ModelFacts] | None = None,
    environments: Mapping[str, EnvironmentUse] | None = None,
    deployments: list[dict[str, Any]] | None = None,
) -> tuple[TrafficVerdict | None, list[tuple[str, str, str]]]:
    """Observe workloads and the routers' loaded config (pushing the written one to routers
    behind), write the status; returns the routers' verdict and the traffic Events of what
    became applied. `running`: the spec with the rollout's running split (what the routers
    must serve), `spec` when None; `plan`: the router config this pass just wrote; `models`
    (when read) records the version and digest each deployment serves; `deployments`: the
    endpoint's Deployments as this pass listed them (none written since), else listed here."""
    status = obj.get("status") or {}
    running = running or spec
    verdict = verify_traffic(kube, owner, running, config, plan) if uses_router(spec) else None
    applied_traffic, applied_mirror = applied_split(running, status, verdict)
    live = live_deployments(kube, owner, deployments)
    healths, router = observe_workloads(kube, owner, spec, list(live.values()))
    events = [("Normal", r, m) for r, m in traffic_events(status, applied_traffic, applied_mirror)]
    new_status = build_endpoint_status(
        spec=spec,
        generation=int(obj["metadata"].get("generation", 1)),
        url=url,
        applied_traffic=applied_traffic,
        applied_mirror=applied_mirror,
        deployments=healths,
        router=router,
        needs_router=uses_router(spec),
        blockers=[],
        previous=status,
        now=now,
        traffic_check=verdict,
        models=models,
        environments=environments,
        warnings=grpc_route_warnings(spec, config),
    )
    first = initial_deploy(spec, status, parse_now(now))
    if first is not None:
        new_status["rollout"] = first
    rollout = status.get("rollout") or first
    new_status["conditions"] = with_rollout_conditions(
        list(new_status.get("conditions") or []),
        spec,
        running,
        rollout,
        is_current(spec, read_rollout({"rollout": rollout})),
        int(obj["metadata"].get("generation", 1)),
        now,
    )
    write_status(kube, obj, new_status, now)
    record_observed(owner.namespace, live.values())  # their events change nothing written
    return verdict, events


def refresh_status(
    kube: Kube, config: OperatorConfig, namespace: str, name: str, now: str
) -> Outcome:
    """Re-read the child Deployments and the routers' loaded config; update readiness and the
    applied split (children are not touched)."""
    kube = PassReads(kube)
    obj = get_endpoint(kube, namespace, name)
    if obj is None:
        return Outcome()
    status = obj.get("status") or {}
    generation = int(obj["metadata"].get("generation", 1))
    if status.get("observedGeneration") != generation or is_blocked(status):
        return Outcome()  # the reconcile of this generation has not applied yet: it will
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return Outcome()
    owner = EndpointRef(name=name, namespace=namespace, uid=str(obj["metadata"]["uid"]))
    running = running_spec(obj, spec, now)
    _, events = observe_and_write_status(
        kube, config, obj, spec, owner, status.get("url"), now, running
    )
    subject = {
        "apiVersion": obj["apiVersion"],
        "kind": KIND_ONLINE_ENDPOINT,
        "metadata": obj["metadata"],
    }
    return Outcome(events=events, subject=subject)


def endpoint_for_label(kube: Kube, namespace: str, value: str) -> str | None:
    """The endpoint whose `mlkube.dev/endpoint` label value is `value` (names too long for a
    label carry a hashed value, so those need the list)."""
    if get_endpoint(kube, namespace, value) is not None:
        return value
    for obj in kube.list(API_VERSION, KIND_ONLINE_ENDPOINT, namespace):
        name = str(obj["metadata"]["name"])
        if label_value(name) == value:
            return name
    return None


def endpoints_waiting_for(kube: Kube, namespace: str, model: str) -> list[str]:
    """Endpoints that use `model` and stopped before applying (e.g. waiting for it)."""
    waiting = []
    for obj in kube.list(API_VERSION, KIND_ONLINE_ENDPOINT, namespace):
        deployments = (obj.get("spec") or {}).get("deployments") or []
        uses = any(d.get("model") == model for d in deployments)
        if uses and is_blocked(obj.get("status") or {}):
            waiting.append(str(obj["metadata"]["name"]))
    return waiting


def release(
    kube: Kube, namespace: str, name: str, uid: str, models: Collection[str] | None = None
) -> None:
    """The endpoint `uid` is gone: delete its children, make the Models forget it.

    No finalizer holds the endpoint (an absent operator must never block a namespace's
    deletion), so this runs on the DELETED event, after the fact. Owner references let the
    garbage collector remove the children anyway, but only once it has discovered the
    OnlineEndpoint kind (up to 30 s after the CRD appears); deleting them here is prompt.
    `deployedBy` is recomputed from the live endpoints, so a same-named successor keeps its
    references: of the `models` it used (its last spec and status), else of every Model in
    the namespace (deleting N endpoints at once then costs N² decoded objects). Idempotent.
    """
    prune(kube, EndpointRef(name=name, namespace=namespace, uid=uid), set())
    if models is None:
        repair_deployed_by(kube, namespace)
        return
    for model in sorted(models):
        repair_deployed_by(kube, namespace, model)
