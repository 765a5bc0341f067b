"""The Model's `status.environments`: which environment images each endpoint serves it with.

Lineage answers "what exactly ran this model": the artifact digest says which weights, this
says which image digest (and so which packages) loaded them, so `mlkube model show` can list
`environment lgbm:1 sha256:…` next to the endpoints. An endpoint writes only its own entries,
guarded by the Model's resourceVersion (endpoints sharing a Model never lose each other's);
entries of endpoints that are gone are dropped by the `deployedBy` repair (endpoint_models).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlkube.builders.environment_use import EnvironmentUse
from mlkube.contract import KIND_ONLINE_ENDPOINT
from mlkube.controllers.kube import Kube
from mlkube.controllers.model_status_lists import update_model_status_list


def entries_for(
    kind: str, endpoint: str, deployments: Iterable[tuple[str, str, EnvironmentUse]]
) -> dict[str, list[dict[str, str]]]:
    """Model -> this endpoint's entries, from (deployment, model, environment) triples."""
    out: dict[str, list[dict[str, str]]] = {}
    for deployment, model, use in sorted(deployments, key=lambda t: t[0]):
        entry = {**use.record(), "kind": kind, "endpoint": endpoint, "deployment": deployment}
        out.setdefault(model, []).append(entry)
    return out


def merged(
    current: Iterable[Mapping[str, Any]],
    kind: str,
    endpoint: str,
    mine: list[dict[str, str]],
    scope: set[str] | None = None,
) -> list[dict[str, Any]] | None:
    """`current` with this endpoint's entries (those of the `scope` deployments only, when
    given) replaced by `mine`; None when nothing changes."""
    before = [dict(e) for e in current]

    def ours(e: Mapping[str, Any]) -> bool:
        same = (e.get("kind"), e.get("endpoint")) == (kind, endpoint)
        return same and (scope is None or e.get("deployment") in scope)

    new = sorted([e for e in before if not ours(e)] + mine, key=_order)
    return None if new == sorted(before, key=_order) else new


def _order(e: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(e.get(k, "")) for k in ("kind", "endpoint", "deployment", "name", "version"))


def only_users(
    current: Iterable[Mapping[str, Any]], users: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]] | None:
    """`current` without entries of endpoints not among `users` (deployedBy references)."""
    live = {(u.get("kind"), u.get("name")) for u in users}
    before = [dict(e) for e in current]
    kept = [e for e in before if (e.get("kind"), e.get("endpoint")) in live]
    return None if kept == before else kept


def record_model_environments(
    kube: Kube,
    namespace: str,
    endpoint: str,
    deployments: Iterable[tuple[str, str, EnvironmentUse | None]],
    kind: str = KIND_ONLINE_ENDPOINT,
    scope: set[str] | None = None,
) -> None:
    """Make the Models this endpoint serves list exactly its (deployment, environment) pairs.

    `deployments`: (deployment name, Model object name, its environment or None); `scope`:
    only these deployments' entries are replaced (a BatchJob knows its own deployment only)."""
    triples = list(deployments)
    wanted = entries_for(kind, endpoint, [(d, m, u) for d, m, u in triples if u is not None])
    for model in sorted({m for _, m, _ in triples}):
        _write(kube, namespace, model, (kind, endpoint), wanted.get(model, []), scope)


def _write(
    kube: Kube,
    namespace: str,
    model: str,
    user: tuple[str, str],
    mine: list[dict[str, str]],
    scope: set[str] | None,
) -> None:
    kind, endpoint = user
    update_model_status_list(
        kube, namespace, model, "environments",
        lambda current: merged(current, kind, endpoint, mine, scope),
    )  # fmt: skip
