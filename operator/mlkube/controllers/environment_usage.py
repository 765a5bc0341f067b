"""`status.usedBy` of an Environment, computed from the live users (docs/environments.md §1).

Who uses an environment is what the endpoints, batch endpoints and pipelines of its namespace
name now (`deployments[].environment`, `steps[].environment`), not what they once wrote in
status: a user deleted while the operator was away does not stay listed. `name@latest` counts
for the highest version of that name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlkube.contract import (
    API_VERSION,
    KIND_BATCH_ENDPOINT,
    KIND_ENVIRONMENT,
    KIND_ONLINE_ENDPOINT,
    KIND_PIPELINE,
)
from mlkube.controllers.kube import Kube
from mlkube.reconcile.environment_facts import claim, is_latest, used_by


def compute_used_by(kube: Kube, obj: Mapping[str, Any]) -> list[dict[str, str]]:
    """The users of `obj` now (ApiError when a list fails: the caller keeps the old list)."""
    namespace = str(obj["metadata"]["namespace"])
    name, version = claim(obj)
    served = kube.served_kinds(API_VERSION)
    envs = kube.list(API_VERSION, KIND_ENVIRONMENT, namespace)
    versions = [claim(e)[1] for e in envs if claim(e)[0] == name]

    def listed(kind: str) -> list[dict[str, Any]]:
        return kube.list(API_VERSION, kind, namespace) if kind in served else []

    return used_by(
        name, version, latest=is_latest(version, versions),
        endpoints=listed(KIND_ONLINE_ENDPOINT), batch_endpoints=listed(KIND_BATCH_ENDPOINT),
        pipelines=listed(KIND_PIPELINE),
    )  # fmt: skip


def used_by_patch(kube: Kube, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """A status patch when usedBy changed, else None."""
    users = compute_used_by(kube, obj)
    if users == ((obj.get("status") or {}).get("usedBy") or []):
        return None
    return {"usedBy": users}
