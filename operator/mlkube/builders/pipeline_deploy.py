"""What a `deploy` step applies to an OnlineEndpoint (pure): the new deployment and the split.

The new deployment copies the serving deployment's scale and settings (replicas or
autoscale, resources, request settings, probes, env; drift only when the new Model has a
baseline to compare with, and then from the first drift-enabled deployment when the serving
one has none), so a canary behaves like what it may replace. A canary weight
scales every other live weight down proportionally by largest remainder, so the split stays
integer and sums to exactly 100 (the CRD's CEL rule). The apply carries only what the step
owns: its deployment and the traffic map (or its one mirror key), under a field manager per
deployment, so a later run's apply never drops an earlier run's deployment (docs/pipelines.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.api.endpoint import MAX_DEPLOYMENTS
from mlkube.contract import API_VERSION, KIND_ONLINE_ENDPOINT
from mlkube.reconcile.traffic_shares import scaled_traffic

FIELD_MANAGER_PREFIX: Final = "mlkube-pipeline"
COPIED: Final = ("replicas", "autoscale", "resources", "requestSettings", "probes", "env")


class DeployError(ValueError):
    """The deployment cannot be added as asked (message says why)."""


def field_manager(deployment: str) -> str:
    """One SSA field manager per pipeline-added deployment (see the module docstring)."""
    return f"{FIELD_MANAGER_PREFIX}/{deployment}"


def serving_deployment(spec: Mapping[str, Any], named: str | None) -> str | None:
    """The deployment serving an endpoint: `named`, else the one with the most live traffic
    (ties: name order); None when there is no such deployment or no live traffic."""
    deployments = {str(d.get("name")) for d in spec.get("deployments") or []}
    if named is not None:
        return named if named in deployments else None
    traffic = spec.get("traffic") or {}
    live = sorted((-int(v), str(k)) for k, v in traffic.items() if int(v) > 0 and k in deployments)
    return live[0][1] if live else None


def template_deployment(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The deployment a new one copies settings from: the serving one, else the first."""
    deployments = list(spec.get("deployments") or [])
    serving = serving_deployment(spec, None)
    for item in deployments:
        if item.get("name") == serving:
            return dict(item)
    return dict(deployments[0]) if deployments else None


def new_deployment(
    spec: Mapping[str, Any], name: str, model: str, runtime: str | None, has_baseline: bool
) -> dict[str, Any]:
    template = template_deployment(spec) or {}
    deployment: dict[str, Any] = {"name": name, "model": model, "runtime": runtime or "auto"}
    deployment.update({k: template[k] for k in COPIED if template.get(k) not in (None, [], {})})
    if has_baseline:
        # The serving deployment's drift settings, else those of any deployment that watches
        # drift: an endpoint monitored for drift (an onDrift trigger's) keeps monitoring the
        # retrained model's canary even when the biggest share is served unmonitored.
        watched = [
            d for d in spec.get("deployments") or [] if (d.get("drift") or {}).get("enabled")
        ]
        drift = template.get("drift") or (watched[0].get("drift") if watched else None)
        if drift:
            deployment["drift"] = drift
    return deployment


def applied(spec: Mapping[str, Any], name: str, model: str) -> bool:
    """Whether the endpoint already has deployment `name` serving `model` (re-entry: the
    split was set by the earlier call, or changed since by someone who meant it)."""
    return any(
        d.get("name") == name and d.get("model") == model for d in spec.get("deployments") or []
    )


def apply_body(
    endpoint: Mapping[str, Any],
    deployment: Mapping[str, Any],
    canary_weight: int | None,
    mirror_percent: int | None,
) -> dict[str, Any]:
    """The SSA body; the endpoint's uid and resourceVersion are preconditions (a change in
    between makes the apply fail with 409 and the step computes the split again)."""
    meta = endpoint.get("metadata") or {}
    spec = endpoint.get("spec") or {}
    name = str(deployment["name"])
    existing = {str(d.get("name")) for d in spec.get("deployments") or []}
    if name not in existing and len(existing) >= MAX_DEPLOYMENTS:
        raise DeployError(f"endpoint {meta.get('name')} has {MAX_DEPLOYMENTS} deployments already")
    body_spec: dict[str, Any] = {"deployments": [dict(deployment)]}
    traffic = {str(k): int(v) for k, v in (spec.get("traffic") or {}).items()}
    mirror = spec.get("mirror") or {}
    if canary_weight is not None:
        if canary_weight > 0 and int(mirror.get(name, 0)) > 0:
            raise DeployError(f"deployment {name} is mirrored: it cannot take live traffic too")
        body_spec["traffic"] = scaled_traffic(traffic, name, canary_weight)
    elif mirror_percent is not None:
        if traffic.get(name, 0) > 0:
            raise DeployError(f"deployment {name} takes live traffic: it cannot be mirrored too")
        body_spec["mirror"] = {name: mirror_percent}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_ONLINE_ENDPOINT,
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "spec": body_spec,
    }


def readiness(endpoint: Mapping[str, Any], name: str, model: str) -> str | None:
    """None when deployment `name` serves `model` with every replica ready and the split
    (or mirror) it has in spec is applied; else what is still missing."""
    meta, spec = endpoint.get("metadata") or {}, endpoint.get("spec") or {}
    status = endpoint.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return "the endpoint has not seen the change yet"
    entry = next((d for d in status.get("deployments") or [] if d.get("name") == name), None)
    if entry is None or entry.get("model") != model:
        return f"deployment {name} is not in the endpoint status yet"
    ready, wanted = int(entry.get("readyReplicas") or 0), int(entry.get("replicas") or 0)
    if wanted == 0 or ready < wanted:
        detail = f": {entry['message']}" if entry.get("message") else ""
        return f"deployment {name}: {ready}/{wanted} replicas ready{detail}"
    for part in ("traffic", "mirror"):
        want = (spec.get(part) or {}).get(name)
        if want is not None and (status.get(part) or {}).get(name, 0) != want:
            return f"{part} {name}={want} is not applied yet"
    return None
