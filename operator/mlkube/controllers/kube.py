"""The Kubernetes API as the controllers see it: a handful of verbs over plain dicts.

`mlkube.k8s.Kube` (the real client) satisfies it; unit tests pass an in-memory fake
(`tests/support/fake_kube.py`). Controllers depend on this protocol and on `ApiError`
only, never on the client module, so every I/O path can be exercised without a cluster.
Errors follow the API server: `ApiError` with status 404 (NotFound), 409 (AlreadyExists on
create, Conflict on a stale resourceVersion or uid precondition), 422 (Invalid).
"""

from __future__ import annotations

from typing import Any, Protocol

from mlkube.k8s.errors import ApiError

__all__ = ["ApiError", "Kube", "get_live"]


class Kube(Protocol):
    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist (an unserved kind is an ApiError)."""
        ...

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Items of a LIST (they carry no apiVersion/kind); `label_selector` as in kubectl."""
        ...

    def apply(
        self, obj: dict[str, Any], field_manager: str = ..., subresource: str = ""
    ) -> dict[str, Any]:
        """Server-side apply with force; `metadata.uid`/`resourceVersion` in `obj` are
        preconditions (the object must be that one: 409/422 otherwise; 409 if absent)."""
        ...

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        """POST; 409 AlreadyExists when the name is taken."""
        ...

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch; `metadata.resourceVersion` in `patch` is a precondition (409)."""
        ...

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> bool:
        """Delete; False if it was already gone. `uid`: only that very object (409 if replaced)."""
        ...

    def served_kinds(self, api_version: str, max_age: float | None = None) -> set[str]:
        """Kinds the API server serves in `api_version`, as discovered at most `max_age`
        seconds ago (None: the client's default of a few seconds; 0: ask now)."""
        ...


def get_live(
    kube: Kube, api_version: str, kind: str, name: str, namespace: str, uid: str
) -> dict[str, Any] | None:
    """The object if it is still that very one (same uid) and not being deleted, else None:
    periodic work for an object ends when this says it is gone."""
    obj = kube.get(api_version, kind, name, namespace)
    meta = (obj or {}).get("metadata") or {}
    if obj is None or meta.get("uid") != uid or meta.get("deletionTimestamp"):
        return None
    return obj
