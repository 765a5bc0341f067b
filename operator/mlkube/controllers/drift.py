"""One drift evaluation of an OnlineEndpoint: poll, merge, write status, report Events.

Polling happens without the endpoint lock (it waits on pods); the status write re-reads the
endpoint under the lock, so it never races the reconcile's own status write in this process,
and only the `deployments` list and the conditions are patched. Events are returned, not posted,
and only after the state that justifies them has been stored: a failed write repeats nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineDeployment, OnlineEndpointSpec
from mlkube.builders.endpoint_drift import drift_enabled
from mlkube.builders.endpoint_drift_status import (
    BASELINE_MISSING,
    BASELINE_UNREADABLE,
    CONDITION,
    NO_REPLICA,
    DriftObservation,
    Event,
    build_drift_entry,
    drift_condition,
)
from mlkube.builders.model_facts import ModelProblem, read_model
from mlkube.builders.names import COMPONENT_SERVER, pod_selector, selector_string
from mlkube.builders.operator_config import ENV_POD_NETWORKS, OperatorConfig, contactable_pods
from mlkube.contract import API_VERSION, KIND_MODEL, KIND_ONLINE_ENDPOINT
from mlkube.controllers.drift_poll import BaselineCache, fetch_summaries
from mlkube.controllers.drift_poll import sidecar_addresses as ready_sidecars
from mlkube.controllers.errors import BaselineError
from mlkube.controllers.kube import Kube
from mlkube.reconcile.apply_needed import same_status
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.drift_episodes import EpisodePolicy, format_time
from mlkube.reconcile.drift_merge import DriftMergeError, merge_summaries
from mlkube.reconcile.drift_profile import DriftProfileError, select_features, unknown_features

Lock = Callable[[str, str], AbstractContextManager[None]]


@dataclass(frozen=True)
class DriftOutcome:
    events: list[Event] = field(default_factory=list)
    subject: dict[str, Any] | None = None  # the endpoint the Events are about


def observe_deployment(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    endpoint: str,
    dep: OnlineDeployment,
    baselines: BaselineCache,
) -> DriftObservation:
    """Poll one deployment's sidecars and merge their summaries against its baseline."""
    found = read_model(dep.model, kube.get(API_VERSION, KIND_MODEL, dep.model, namespace))
    if isinstance(found, ModelProblem):
        return DriftObservation(problem=(NO_REPLICA, found.message))
    if found.baseline_uri is None:
        return DriftObservation(
            problem=(
                BASELINE_MISSING,
                f"Model {dep.model} has no spec.baseline, so no drift sidecar runs: register "
                "the model with a profile (mlkube model register --baseline)",
            )
        )
    wanted = dep.drift.features if dep.drift is not None else []
    try:
        full = baselines.get(found.baseline_uri, found.baseline_digest)
        profile = select_features(full, wanted)
    except (BaselineError, DriftProfileError) as err:
        message = f"baseline {found.baseline_uri} of Model {dep.model}: {err}"
        return DriftObservation(problem=(BASELINE_UNREADABLE, message))
    unknown = unknown_features(full, wanted)
    notes = [f"features not in the baseline: {', '.join(unknown)}"] if unknown else []
    selector = selector_string(pod_selector(endpoint, COMPONENT_SERVER, dep.name))
    ready = ready_sidecars(kube.list("v1", "Pod", namespace, label_selector=selector))
    hosts = contactable_pods(ready, config)
    if ready and not hosts:
        message = (
            f"{len(ready)} Ready replicas run the drift sidecar at addresses outside the "
            f"operator's pod networks ({ENV_POD_NETWORKS}): not polled"
        )
        return DriftObservation(problem=(NO_REPLICA, message), note="; ".join(notes))
    if not hosts:
        message = "no Ready replica runs the drift sidecar yet"
        return DriftObservation(problem=(NO_REPLICA, message), note="; ".join(notes))
    summaries, errors = fetch_summaries(hosts, config.drift_port, config.drift_poll_timeout, config)
    try:
        merged = merge_summaries(summaries, profile)
    except (DriftMergeError, KeyError, TypeError, ValueError) as err:
        detail = errors[0] if errors else str(err)
        message = f"none of {len(hosts)} Ready replicas gave a usable summary ({detail})"
        return DriftObservation(
            problem=(NO_REPLICA, message), replicas_failed=len(hosts), note="; ".join(notes)
        )
    failed = len(errors) + int(merged["skippedSummaries"])
    if failed:
        detail = f" ({errors[0]})" if errors else ""
        notes.append(f"{failed} of {len(hosts)} replicas not merged{detail}")
    return DriftObservation(
        merged=merged,
        replicas_reporting=len(summaries) - int(merged["skippedSummaries"]),
        replicas_failed=failed,
        note="; ".join(notes),
    )


def apply_observations(
    obj: Mapping[str, Any],
    spec: OnlineEndpointSpec,
    observations: Mapping[str, DriftObservation],
    now: datetime.datetime,
    policy: EpisodePolicy,
) -> tuple[dict[str, Any] | None, list[Event]]:
    """(status patch or None when nothing changed, Events) for a freshly read endpoint."""
    status = obj.get("status") or {}
    generation = int((obj.get("metadata") or {}).get("generation", 1))
    monitored = {d.name for d in spec.deployments if drift_enabled(d)}
    deployments, entries, events = [], {}, []
    for item in status.get("deployments") or []:
        item = dict(item)
        name = str(item.get("name"))
        if name in observations:
            entry, found = build_drift_entry(
                name, observations[name], item.get("drift"), now, policy
            )
            item["drift"] = entry
            events.extend(found)
        elif name not in monitored:
            item.pop("drift", None)
        if item.get("drift"):
            entries[name] = item["drift"]
        deployments.append(item)
    ok, reason, message = drift_condition(entries)
    conditions = set_condition(
        list(status.get("conditions") or []),
        type_=CONDITION,
        status=ok,
        reason=reason,
        message=message,
        generation=generation,
        now=format_time(now) or "",
    )
    patch = {"deployments": deployments, "conditions": conditions}
    # As stored (CRD defaults added, 0.0 read back as 0): an idle poll writes nothing.
    if all(same_status(v, status.get(k)) for k, v in patch.items()):
        return None, events
    return patch, events


def evaluate_drift(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    name: str,
    baselines: BaselineCache,
    lock: Lock,
    clock: Callable[[], datetime.datetime],
) -> DriftOutcome:
    """Poll every drift-enabled deployment of the endpoint and store the verdicts."""
    obj = kube.get(API_VERSION, KIND_ONLINE_ENDPOINT, name, namespace)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return DriftOutcome()
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return DriftOutcome()  # the reconcile reports InvalidSpec
    observations = {
        dep.name: observe_deployment(kube, config, namespace, name, dep, baselines)
        for dep in spec.deployments
        if drift_enabled(dep)
    }
    policy = EpisodePolicy(config.drift_clear_evaluations, config.drift_cooldown)
    with lock(namespace, name):
        fresh = kube.get(API_VERSION, KIND_ONLINE_ENDPOINT, name, namespace)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return DriftOutcome()
        try:
            spec = OnlineEndpointSpec.model_validate(fresh.get("spec") or {})
        except ValidationError:
            return DriftOutcome()
        names = {d.name for d in spec.deployments}
        current = {k: v for k, v in observations.items() if k in names}
        patch, events = apply_observations(fresh, spec, current, clock(), policy)
        if patch is not None:
            kube.patch(
                API_VERSION,
                KIND_ONLINE_ENDPOINT,
                name,
                {"status": patch},
                namespace,
                subresource="status",
            )
    subject = {
        "apiVersion": fresh["apiVersion"],
        "kind": KIND_ONLINE_ENDPOINT,
        "metadata": fresh["metadata"],
    }
    return DriftOutcome(events=events, subject=subject)
