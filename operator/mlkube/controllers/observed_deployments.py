"""The version of each child Deployment that the endpoint's last status write was computed from.

A Deployment event carrying that very version tells the status nothing new, so it costs no
refresh pass. At a restart Kopf lists the child Deployments and sends an event for each, most
after the endpoint's resume pass has read them: at 1,000 endpoints that was 660 refresh passes
(2,600 requests) repeating what the resume passes had just written
(docs/benchmarks/operator-scale.md, "Fourteenth session"). Process-local and bounded (LRU):
a forgotten version only costs the refresh it would have saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from mlkube.controllers.memo import FingerprintMemo

_OBSERVED: Final = FingerprintMemo[bool](size=50_000)


def record_observed(namespace: str, deployments: Iterable[Mapping[str, Any]]) -> None:
    """A status computed from these Deployments (as read) was written."""
    for obj in deployments:
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if version:
            _OBSERVED.put(f"{namespace}/{meta.get('name')}", version, True)


def already_observed(namespace: str, name: str, resource_version: str | None) -> bool:
    """The last status written read the Deployment `namespace/name` at this version."""
    if not resource_version:
        return False
    return bool(_OBSERVED.get(f"{namespace}/{name}", resource_version))


def forget_observed() -> None:
    """Tests: start from nothing seen."""
    _OBSERVED.clear()
