"""A Kube wrapper counting requests by verb and kind: the request budget of a controller pass.

`served_kinds` counts as a discovery GET (the real client asks the API server each time it is
not cached); every other verb counts once per call, which is one HTTP request in the real client.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mlkube.controllers.kube import Kube


class CountingKube:
    def __init__(self, inner: Kube) -> None:
        self.inner = inner
        self.calls: Counter[tuple[str, str]] = Counter()

    def total(self, verb: str | None = None) -> int:
        return sum(n for (v, _), n in self.calls.items() if verb is None or v == verb)

    def reset(self) -> None:
        self.calls.clear()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        self.calls["get", kind] += 1
        return self.inner.get(api_version, kind, name, namespace)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        self.calls["list", kind] += 1
        return self.inner.list(api_version, kind, namespace, label_selector)

    def apply(
        self, obj: dict[str, Any], field_manager: str = "mlkube", subresource: str = ""
    ) -> Any:
        self.calls["apply" + (f"/{subresource}" if subresource else ""), obj["kind"]] += 1
        return self.inner.apply(obj, field_manager, subresource)

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        self.calls["create", obj["kind"]] += 1
        return self.inner.create(obj, field_manager)

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
        self.calls["patch" + (f"/{subresource}" if subresource else ""), kind] += 1
        return self.inner.patch(
            api_version, kind, name, patch, namespace, subresource, field_manager
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
        self.calls["delete", kind] += 1
        return self.inner.delete(api_version, kind, name, namespace, propagation, uid)

    def served_kinds(self, api_version: str, max_age: float | None = None) -> set[str]:
        self.calls["discovery", api_version] += 1
        return self.inner.served_kinds(api_version, max_age)
