"""The traffic fast path's pure half: is a spec change traffic-only, and what router ConfigMap
does it need (issue 15: a traffic change reaches every router config within 30 s at N=1,000).

A change of spec.traffic or spec.mirror alone changes one child: the router ConfigMap (the
model Deployments, Services and the router Deployment carry nothing of the split, see
`builders.endpoint_server`). Everything else the full pass does (Models, environments, keys,
every other child, prune) would rewrite nothing, so the fast path skips it. Anything uncertain
answers "full pass": a rollout owns the split, the gateway backend (the HTTPRoute carries the
split), a last pass that did not apply (blocked, degraded) or never ran. The ConfigMap comes
from the same builders as the full pass's, so a later full pass finds nothing to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router import build_router_configmap
from mlkube.builders.endpoint_status import is_blocked
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.reconcile.apply_needed import with_manifest_digest
from mlkube.reconcile.conditions import get_condition

# Spec keys (camelCase, as stored) whose change touches only the router config and status.
TRAFFIC_KEYS: Final = frozenset({"traffic", "mirror"})
# status.rollout phases in which the rollout loop, not the spec, decides the running split.
ROLLOUT_RUNNING: Final = frozenset({"Progressing", "Paused"})


@dataclass(frozen=True)
class TrafficDecision:
    """`fast`: the change may take the fast path; `reason`: why not (for logs and tests)."""

    fast: bool
    reason: str = ""


def _full(reason: str) -> TrafficDecision:
    return TrafficDecision(False, reason)


def decide_traffic_change(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], status: Mapping[str, Any] | None
) -> TrafficDecision:
    """Whether going from spec `old` (the last one handled) to `new` (the live one) is a
    traffic-only change the fast path may apply, given the endpoint's last written `status`."""
    if old is None:
        return _full("no previous spec (create or resume)")
    changed = {key for key in set(old) | set(new) if old.get(key) != new.get(key)}
    if not changed:
        return _full("spec unchanged")
    if not changed <= TRAFFIC_KEYS:
        return _full("changed: " + ", ".join(sorted(changed - TRAFFIC_KEYS)))
    if new.get("trafficBackend", "router") != "router":
        return _full("gateway-api backend: the HTTPRoute carries the split")
    if new.get("rollout") is not None:
        return _full("spec.rollout: a rollout owns the split")
    status = status or {}
    rollout = status.get("rollout")
    if isinstance(rollout, Mapping) and rollout.get("phase") in ROLLOUT_RUNNING:
        return _full("a rollout is running")
    observed = status.get("observedGeneration")
    if not isinstance(observed, int) or isinstance(observed, bool) or observed < 1:
        return _full("no pass has applied the endpoint yet")
    if is_blocked(status):
        return _full("the last pass did not apply its children")
    degraded = get_condition(list(status.get("conditions") or []), "Degraded") or {}
    if degraded.get("status") == "True":
        return _full("the endpoint is Degraded")
    return TrafficDecision(True)


def build_traffic_configmap(
    owner: EndpointRef, running: OnlineEndpointSpec, config: OperatorConfig, revision: int
) -> dict[str, Any]:
    """The router ConfigMap exactly as `build_endpoint_children` makes it for `running` (the
    spec with the rollout's running split) at `revision`, manifest digest included."""
    return with_manifest_digest(build_router_configmap(owner, running, config, revision))
