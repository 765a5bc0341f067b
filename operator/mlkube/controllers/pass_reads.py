"""One reconcile pass's reads, each made once: a Kube that remembers the objects it has seen.

A pass reads the same objects several times (the Models while syncing references and while
reading their facts, the keys Secret while choosing keys, writing children and pruning, the
router ConfigMap and Deployment while writing and observing). At 1,000 endpoints each extra
GET is 1,000 requests per resync, so the pass shares one view: a GET answers from what the
pass last saw of that object, and every write records what the API server answered (the
newest state there is), so later reads in the pass see the pass's own writes. A failed write
forgets the object (a 409 is retried with a fresh read). LISTs are never cached: status
observation must see objects made by others; the objects of a LIST the pass asks to `seed`
answer its later GETs (the endpoint's children, listed once at the start of a pass). Lives
for one pass only, so nothing here grows with the number of endpoints. Objects are kept as
their JSON (orjson) and decoded afresh for each reader: API objects are JSON, and this is
~10x cheaper than `copy.deepcopy`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from mlkube.contract import FIELD_MANAGER
from mlkube.controllers.kube import Kube

Key = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)


class PassReads:
    def __init__(self, inner: Kube) -> None:
        self.inner = inner
        self._seen: dict[Key, bytes | None] = {}
        # (apiVersion, kind) this pass wrote or deleted: a LIST made before holds its past
        self.written_kinds: set[tuple[str, str]] = set()

    def _remember(self, key: Key, obj: dict[str, Any] | None) -> None:
        self._seen[key] = orjson.dumps(obj) if obj else None

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        key = (api_version, kind, namespace or "", name)
        if key not in self._seen:
            self._remember(key, self.inner.get(api_version, kind, name, namespace))
        found = self._seen[key]
        return orjson.loads(found) if found is not None else None  # type: ignore[no-any-return]

    def seed(
        self, api_version: str, kind: str, namespace: str | None, items: list[dict[str, Any]]
    ) -> None:
        """Objects of a LIST this pass made (items carry no apiVersion/kind) answer its later
        GETs of them, unless the pass already saw them since."""
        for item in items:
            key = (api_version, kind, namespace or "", str(item["metadata"]["name"]))
            if key not in self._seen:
                self._remember(key, {"apiVersion": api_version, "kind": kind, **item})

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.inner.list(api_version, kind, namespace, label_selector)

    def _written(self, obj: dict[str, Any], call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        key = (str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace") or "", meta["name"])
        self.written_kinds.add(key[:2])
        self._seen.pop(key, None)  # a failed write (409: changed meanwhile) reads afresh
        result: dict[str, Any] = call()
        if result and (result.get("metadata") or {}).get("name") == meta["name"]:
            self._remember(key, {"apiVersion": obj["apiVersion"], "kind": obj["kind"], **result})
        return result

    def apply(
        self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER, subresource: str = ""
    ) -> dict[str, Any]:
        return self._written(obj, lambda: self.inner.apply(obj, field_manager, subresource))

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        return self._written(obj, lambda: self.inner.create(obj, field_manager))

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
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        target = {"apiVersion": api_version, "kind": kind, "metadata": meta}
        return self._written(
            target,
            lambda: self.inner.patch(
                api_version, kind, name, patch, namespace, subresource, field_manager
            ),
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> bool:
        key = (api_version, kind, namespace or "", name)
        self._seen.pop(key, None)  # gone, or lingering with a deletionTimestamp: read again
        self.written_kinds.add((api_version, kind))
        return self.inner.delete(api_version, kind, name, namespace, propagation, uid)

    def served_kinds(self, api_version: str, max_age: float | None = None) -> set[str]:
        return self.inner.served_kinds(api_version, max_age)
