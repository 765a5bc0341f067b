"""Which endpoints use which Model, as this process's watches last saw them.

A hint for `repair_deployed_by`, never its proof: a Model's check GETs the endpoints it names
(its `deployedBy` and environment entries) and the ones this index says use it, so it costs a
few GETs instead of a LIST of every endpoint in the namespace. Every Model checking itself at
operator start used to make that LIST (N Models x N endpoints decoded: 505 LISTs of 1,000
endpoints at N=1,000). The index can lag the API server; it only decides which endpoints
are looked at, and a user it has not seen yet adds itself on its own reconcile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final


def used_models(obj: Mapping[str, Any] | None) -> frozenset[str]:
    """The Models an endpoint object (either kind) names in `spec.deployments`; none while it
    is being deleted."""
    if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return frozenset()
    deployments = (obj.get("spec") or {}).get("deployments") or []
    return frozenset(
        str(d["model"]) for d in deployments if isinstance(d, Mapping) and d.get("model")
    )


class UsersIndex:
    """(namespace, kind, endpoint) -> the Models its spec names, and the reverse; thread-safe."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], frozenset[str]] = {}
        self._users: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._guard = threading.Lock()

    def observe(self, kind: str, namespace: str, name: str, obj: Mapping[str, Any] | None) -> None:
        """Record an endpoint's latest event (`obj` None: deleted)."""
        models = used_models(obj)
        key = (namespace, kind, name)
        with self._guard:
            for model in self._models.pop(key, frozenset()) - models:
                users = self._users.get((namespace, model))
                if users is not None:
                    users.discard((kind, name))
                    if not users:
                        del self._users[namespace, model]
            if models:
                self._models[key] = models
                for model in models:
                    self._users.setdefault((namespace, model), set()).add((kind, name))

    def users(self, namespace: str, model: str) -> list[tuple[str, str]]:
        """(kind, name) of the endpoints last seen naming `model`."""
        with self._guard:
            return sorted(self._users.get((namespace, model), ()))

    def clear(self) -> None:
        with self._guard:
            self._models.clear()
            self._users.clear()


USERS: Final = UsersIndex()


def ordered(candidates: Iterable[tuple[str, str]], kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """Candidates in the order a LIST per kind would give them (kind order, then name)."""
    rank = {k: i for i, k in enumerate(kinds)}
    return sorted(set(candidates), key=lambda c: (rank.get(c[0], len(kinds)), c[1]))
