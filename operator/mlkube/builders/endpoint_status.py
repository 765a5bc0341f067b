"""The OnlineEndpoint's status: URL, applied traffic, per-deployment readiness, conditions.

Ready means every deployment's pods (and the router's, for the router backend) are available
at the current template; Progressing means a rollout or a wait for Models is under way;
Degraded means something needs a human (a failed Model, a rollout past its deadline, pods the
namespace refuses, pods that keep failing: see pod_problems). Built as `OnlineEndpointStatus`,
so a status the CRD would refuse fails here rather than at the API server; messages are bounded.
Pure: Deployment objects (and pod problems) and the clock come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mlkube.api.common import bound_message
from mlkube.api.endpoint import (
    DeploymentStatus,
    DriftStatus,
    OnlineEndpointSpec,
    OnlineEndpointStatus,
)
from mlkube.api.environment_status import EnvironmentRecord
from mlkube.builders.endpoint_drift import drift_enabled
from mlkube.builders.endpoint_drift_status import CONDITION as DRIFT_CONDITION
from mlkube.builders.endpoint_drift_status import drift_condition
from mlkube.builders.endpoint_server import deployment_replicas
from mlkube.builders.endpoint_status_history import environment_record, served_model, traffic_change
from mlkube.builders.environment_use import EnvironmentUse
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.pod_problems import PodProblem
from mlkube.builders.status_conditions import condition_models
from mlkube.reconcile.conditions import get_condition, set_condition
from mlkube.reconcile.router_config import TRAFFIC_CONDITION, TrafficVerdict

# Ready=False reasons that mean "the last reconcile could not apply the children".
BLOCKER_REASONS: Final = frozenset(
    {
        "ModelNotFound",
        "ModelNotReady",
        "ModelFailed",
        "GatewayNotConfigured",
        "GatewayAPIMissing",
        "InvalidSpec",
        "NameConflict",
        # An environment that is building, lacks the serving entrypoint or is not offered.
        "EnvironmentNotReady",
        "EnvironmentIncompatible",
        "EnvironmentNotFound",
    }
)


@dataclass(frozen=True)
class WorkloadHealth:
    """What a child Deployment's status says."""

    replicas: int
    ready: int
    available: bool
    failure: str | None = None
    pods: PodProblem | None = None  # from the pods, while not available


@dataclass(frozen=True)
class Blocker:
    """Why the children could not be applied; `degraded` when only a human can fix it."""

    reason: str
    message: str
    degraded: bool = False


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    return {str(c.get("type")): c for c in status.get("conditions") or []}


def workload_health(obj: Mapping[str, Any] | None) -> WorkloadHealth | None:
    """Health of a Deployment, None when it does not exist."""
    if obj is None:
        return None
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = int(spec.get("replicas", 1))
    generation = int((obj.get("metadata") or {}).get("generation", 0))
    current = int(status.get("observedGeneration", -1)) >= generation
    updated = int(status.get("updatedReplicas", 0))
    available_count = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    conds = _conditions(obj)
    available_cond = (conds.get("Available") or {}).get("status") == "True" or want == 0
    available = (
        current
        and updated >= want
        and available_count >= want
        and total <= updated
        and available_cond
    )
    failure = None
    progressing = conds.get("Progressing") or {}
    replica_failure = conds.get("ReplicaFailure") or {}
    if (
        progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        failure = str(progressing.get("message") or "rollout exceeded its progress deadline")
    elif replica_failure.get("status") == "True":
        failure = str(replica_failure.get("message") or "pods cannot be created")
    return WorkloadHealth(
        replicas=want,
        ready=int(status.get("readyReplicas", 0)),
        available=available,
        failure=failure,
    )


def is_blocked(status: Mapping[str, Any]) -> bool:
    """True when the last reconcile stopped before applying (status then only changes on retry)."""
    ready = get_condition(list(status.get("conditions") or []), "Ready") or {}
    return ready.get("reason") in BLOCKER_REASONS


def pods_message(health: WorkloadHealth | None) -> str:
    """The pods' problem while the workload is not available, else ""."""
    if health is None or health.available or health.pods is None:
        return ""
    return health.pods.message


def _summarize(
    spec: OnlineEndpointSpec,
    deployments: Mapping[str, WorkloadHealth | None],
    router: WorkloadHealth | None,
    needs_router: bool,
) -> tuple[list[str], list[tuple[str, str]]]:
    """(waiting, failures as (reason, text)): human-readable lists for condition messages."""
    waiting: list[str] = []
    failures: list[tuple[str, str]] = []
    parts: list[tuple[str, WorkloadHealth | None]] = [
        (d.name, deployments.get(d.name)) for d in spec.deployments
    ]
    if needs_router:
        parts.append(("router", router))
    for name, health in parts:
        pods = pods_message(health)
        if health is None:
            waiting.append(f"{name} (not created)")
        elif health.failure:
            failures.append(("RolloutFailed", f"{name}: {health.failure}"))
        elif pods and health.pods is not None and health.pods.fatal:
            failures.append(("PodsFailing", f"{name}: {pods}"))
        elif not health.available:
            detail = f": {pods}" if pods else ""
            waiting.append(f"{name} ({health.ready}/{health.replicas} ready{detail})")
    return waiting, failures


def _readiness(
    spec: OnlineEndpointSpec,
    deployments: Mapping[str, WorkloadHealth | None],
    router: WorkloadHealth | None,
    needs_router: bool,
    blockers: Sequence[Blocker],
) -> dict[str, tuple[bool, str, str]]:
    """Condition type -> (status, reason, message)."""
    if blockers:
        message = "; ".join(b.message for b in blockers)
        degraded = [b for b in blockers if b.degraded]
        first = degraded[0] if degraded else blockers[0]
        return {
            "Ready": (False, first.reason, message),
            "Progressing": (not degraded, first.reason, message),
            "Degraded": (bool(degraded), first.reason if degraded else "AsExpected", message),
        }
    waiting, failures = _summarize(spec, deployments, router, needs_router)
    if failures:
        reason = failures[0][0]
        message = "; ".join(text for _, text in failures)
        return {
            "Ready": (False, reason, message),
            "Progressing": (False, reason, message),
            "Degraded": (True, reason, message),
        }
    if waiting:
        message = "waiting for " + ", ".join(waiting)
        return {
            "Ready": (False, "Progressing", message),
            "Progressing": (True, "RollingOut", message),
            "Degraded": (False, "AsExpected", ""),
        }
    count = len(spec.deployments)
    message = f"{count} deployment{'s' if count != 1 else ''} available" + (
        " behind the router" if needs_router else ""
    )
    return {
        "Ready": (True, "Available", message),
        "Progressing": (False, "Complete", message),
        "Degraded": (False, "AsExpected", ""),
    }


def build_endpoint_status(
    *,
    spec: OnlineEndpointSpec,
    generation: int,
    url: str | None,
    applied_traffic: Mapping[str, int] | None,
    applied_mirror: Mapping[str, int],
    deployments: Mapping[str, WorkloadHealth | None],
    router: WorkloadHealth | None,
    needs_router: bool,
    blockers: Sequence[Blocker],
    previous: Mapping[str, Any] | None,
    now: str,
    traffic_check: TrafficVerdict | None = None,
    models: Mapping[str, ModelFacts] | None = None,
    environments: Mapping[str, EnvironmentUse] | None = None,
    warnings: Sequence[Blocker] = (),
) -> dict[str, Any]:
    """The full status; `deployments` maps spec deployment names to their Deployment's health.
    `traffic_check` (the routers' answer) sets TrafficApplied; None keeps the previous one
    (dropped without a router). `models` (Model object name -> facts) records the version and
    digest each deployment serves; without it the previous ones are kept, and so are the
    `environments` (deployment name -> the environment its server runs on). `warnings`: what
    only a human can fix but blocks nothing (the endpoint serves): Degraded, Ready unchanged."""
    previous = previous or {}
    conditions = list(previous.get("conditions") or [])
    if not needs_router:  # e.g. switched to the gateway backend: no router to confirm it
        conditions = [c for c in conditions if c.get("type") != TRAFFIC_CONDITION]
    elif traffic_check is not None:
        conditions = set_condition(
            conditions,
            type_=TRAFFIC_CONDITION,
            status=traffic_check.applied,
            reason=traffic_check.reason,
            message=bound_message(traffic_check.message),
            generation=generation,
            now=now,
        )
    verdicts = _readiness(spec, deployments, router, needs_router, blockers)
    if warnings and not verdicts["Degraded"][0]:
        text = "; ".join(w.message for w in warnings)
        verdicts["Degraded"] = (True, warnings[0].reason, text)
    for type_, (ok, reason, message) in verdicts.items():
        conditions = set_condition(
            conditions,
            type_=type_,
            status=ok,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )
    # The drift monitor owns `drift` entries and DriftDetected; carry them, drop stale ones.
    drift = {
        str(d.get("name")): d["drift"]
        for d in previous.get("deployments") or []
        if isinstance(d, Mapping) and d.get("drift")
    }
    before = {
        str(d.get("name")): d for d in previous.get("deployments") or [] if isinstance(d, Mapping)
    }
    per_deployment = []
    for dep in spec.deployments:
        health = deployments.get(dep.name)
        carried = drift.get(dep.name) if drift_enabled(dep) else None
        pods = pods_message(health)
        served = served_model(dep.model, before.get(dep.name), health, (models or {}), now)
        environment = environment_record(dep, before.get(dep.name), environments)
        per_deployment.append(
            DeploymentStatus(
                name=dep.name,
                model=dep.model,
                ready_replicas=health.ready if health else 0,
                replicas=health.replicas if health else deployment_replicas(dep),
                drift=DriftStatus.model_validate(carried) if carried else None,
                **({"message": bound_message(pods)} if pods else {}),
                environment=EnvironmentRecord.model_validate(environment) if environment else None,
                **served,
            )
        )
    monitored = [d.name for d in spec.deployments if drift_enabled(d)]
    if not monitored and any(c.get("type") == DRIFT_CONDITION for c in conditions):
        ok, reason, message = drift_condition({})
        conditions = set_condition(
            conditions,
            type_=DRIFT_CONDITION,
            status=ok,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )
    # No `traffic` nor `mirror` while no split was applied yet (endpoint_changes.py).
    applied: dict[str, Any] = {}
    if applied_traffic is not None:
        applied = {
            "traffic": dict(sorted(applied_traffic.items())),
            "mirror": dict(sorted(applied_mirror.items())),
        }
    return OnlineEndpointStatus(
        url=url,
        **applied,
        last_traffic_change=traffic_change(previous, applied_traffic, applied_mirror, now),
        deployments=per_deployment,
        conditions=condition_models(conditions),
        observed_generation=generation,
        message=bound_message(verdicts["Ready"][2]),
    ).to_status()
