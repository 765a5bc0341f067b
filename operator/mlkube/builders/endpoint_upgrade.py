"""Children named by an operator from before collision-free names, and when to let them go.

Until child names carried a hash, an endpoint's children were plain joins: `credit-blue`,
`credit-router`, `credit-keys` (now `credit-blue-<hash>`, ...). After an upgrade the new
operator creates the hashed children next to them. Two things must not happen then:
- every client's API key stops working: the new keys Secret takes the keys of the old one
  (only one this endpoint controls, never a user's Secret that happens to have the name);
- traffic has no backend while the new pods start: the old Deployments (and the Services,
  ConfigMap and Secret their pods use) stay until every new Deployment is Available, the
  way a rolling update keeps the old ReplicaSet. Pure: the controller reads and deletes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from mlkube.builders.endpoint_status import workload_health
from mlkube.builders.names import dns_name


def legacy_keys_secret_name(endpoint: str) -> str:
    """The keys Secret's name before hashed names, e.g. credit-keys."""
    return dns_name(endpoint, "keys")


def legacy_child_names(endpoint: str, deployments: Iterable[str]) -> frozenset[str]:
    """Every pre-hash child name of the endpoint with these deployments (the endpoint's own
    Service kept its name, so it is not one of them)."""
    names = {dns_name(endpoint, d) for d in deployments}
    return frozenset({*names, dns_name(endpoint, "router"), legacy_keys_secret_name(endpoint)})


def rollout_complete(deployments: Iterable[Mapping[str, Any] | None]) -> bool:
    """Every Deployment exists and is Available at its current generation and replicas."""
    for obj in deployments:
        health = workload_health(obj)
        if health is None or not health.available:
            return False
    return True


def legacy_to_keep(
    stale: Collection[str],
    legacy: Collection[str],
    new_deployments: Iterable[Mapping[str, Any] | None],
) -> set[str]:
    """Names among the `stale` children to keep for now: the pre-hash ones, while the new
    Deployments are not all Available (anything else stale goes at once)."""
    held = {name for name in stale if name in legacy}
    if not held or rollout_complete(new_deployments):
        return set()
    return held
