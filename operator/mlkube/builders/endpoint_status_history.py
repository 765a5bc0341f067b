"""What the endpoint's status records about its history for the CloudEvents extractor
(mlkube.events): when each deployment became ready with its Model, and the last change of the
applied split. The extractor sees only the current object, so the status must say when things
happened (docs/notifications.md §3). Pure: the clock comes in as `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlkube.api.endpoint import OnlineDeployment, TrafficChange
from mlkube.builders.environment_use import EnvironmentUse, parse_reference
from mlkube.builders.model_facts import ModelFacts
from mlkube.reconcile.endpoint_changes import split_applied_before

if TYPE_CHECKING:
    from mlkube.builders.endpoint_status import WorkloadHealth


def served_model(
    model: str,
    before: Mapping[str, Any] | None,
    health: WorkloadHealth | None,
    models: Mapping[str, ModelFacts],
    now: str,
) -> dict[str, Any]:
    """readyAt, modelVersion, modelDigest of a deployment: kept while it serves the same Model
    (and digest); readyAt set when it is first available with it (deployment.ready events)."""
    kept: dict[str, Any] = {}
    if before is not None and before.get("model") == model:
        kept = {k: before[k] for k in ("readyAt", "modelVersion", "modelDigest") if before.get(k)}
    facts = models.get(model)
    if facts is not None:
        if kept.get("modelDigest") not in (None, facts.digest):
            kept.pop("readyAt", None)  # same name, another artifact: ready again when rolled
        kept.update(modelVersion=facts.version, modelDigest=facts.digest)
    if "readyAt" not in kept and health is not None and health.available and health.ready > 0:
        kept["readyAt"] = now
    return {
        "ready_at": kept.get("readyAt"),
        "model_version": kept.get("modelVersion"),
        "model_digest": kept.get("modelDigest"),
    }


def traffic_change(
    previous: Mapping[str, Any],
    traffic: Mapping[str, int] | None,
    mirror: Mapping[str, int],
    now: str,
) -> TrafficChange | None:
    """The last change of the applied split: a new one when it differs from the previous
    status's (not on the first apply, like the TrafficChanged Event), else the recorded one;
    `traffic` None: none applied yet."""
    recorded = previous.get("lastTrafficChange")
    kept = TrafficChange.model_validate(recorded) if isinstance(recorded, Mapping) else None
    if traffic is None:
        return kept
    old_traffic = dict(previous.get("traffic") or {})
    old_mirror = dict(previous.get("mirror") or {})
    new_mirror = {k: v for k, v in mirror.items() if v > 0}
    changed = old_traffic != dict(traffic) or old_mirror != new_mirror
    if changed and split_applied_before(previous):
        return TrafficChange(at=now, previous_traffic=old_traffic, previous_mirror=old_mirror)
    return kept


def environment_record(
    dep: OnlineDeployment,
    before: Mapping[str, Any] | None,
    environments: Mapping[str, EnvironmentUse] | None,
) -> dict[str, str] | None:
    """`environment: {name, version, image}` the deployment's server runs on: from this pass's
    resolution when there was one, else the previous status's while the spec names the same
    environment (a status refresh resolves nothing)."""
    if not dep.environment:
        return None
    if environments is not None:
        use = environments.get(dep.name)
        return use.record() if use is not None else None
    previous = (before or {}).get("environment")
    same = (
        isinstance(previous, Mapping)
        and previous.get("name") == parse_reference(dep.environment)[0]
    )
    if isinstance(previous, Mapping) and same:
        return {k: str(previous[k]) for k in ("name", "version", "image") if previous.get(k)}
    return None
