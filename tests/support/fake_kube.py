"""An in-memory Kubernetes API for unit tests of the controllers (`mlkube.controllers.kube.Kube`).

It models what the controllers rely on, the way the API server does it: uids and
resourceVersions, 409 AlreadyExists on create, 409 Conflict on a stale resourceVersion or a
uid precondition, 404 NotFound, server-side apply that merges into (and so takes over) what
exists, JSON merge patches of the object or its status subresource, label selection, LIST
items without apiVersion/kind, and the garbage collector deleting dependents of a deleted
owner. Tests inject races with `before` hooks and read every write from `writes`.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlkube.k8s.errors import ApiError

Key = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)
Hook = Callable[[str, Key], None]  # (verb, key), called before the verb runs
_UIDS = itertools.count(1)

DEFAULT_KINDS = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "Job"),
    ("mlkube.dev/v1alpha1", "Model"),
    ("mlkube.dev/v1alpha1", "OnlineEndpoint"),
    ("mlkube.dev/v1alpha1", "BatchEndpoint"),
    ("mlkube.dev/v1alpha1", "BatchJob"),
    ("mlkube.dev/v1alpha1", "Pipeline"),
    ("mlkube.dev/v1alpha1", "PipelineRun"),
}


@dataclass
class FakeKube:
    kinds: set[tuple[str, str]] = field(default_factory=lambda: set(DEFAULT_KINDS))
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, Key]] = field(default_factory=list)
    before: list[Hook] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # uids are unique across fakes, as in a real cluster (process-wide memos key on them)
    _uids: itertools.count[int] = field(default_factory=lambda: _UIDS)

    # -- helpers for tests -----------------------------------------------------------------
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` as if someone else created it (no write is recorded)."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[self._key(obj)] = copy.deepcopy(obj)
        return copy.deepcopy(obj)

    def mutate(self, key: Key, change: Callable[[dict[str, Any]], None]) -> None:
        """Another writer changes the object (no hooks run, a new resourceVersion is set)."""
        current = self.objects[key]
        new = copy.deepcopy(current)
        change(new)
        self._store(key, current, new)

    def stored(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(api_version, kind, namespace, name)])

    def written(self, verb: str | None = None) -> list[Key]:
        return [key for v, key in self.writes if verb is None or v == verb]

    # -- the Kube protocol -----------------------------------------------------------------
    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        key = self._checked(api_version, kind, namespace, name)
        self._hooks("get", key)
        found = self.objects.get(key)
        return copy.deepcopy(found) if found is not None else None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        self._checked(api_version, kind, namespace, "")
        wanted = _parse_selector(label_selector)
        items = []
        for (av, k, ns, _), obj in sorted(self.objects.items()):
            if (av, k) != (api_version, kind) or (namespace and ns != namespace):
                continue
            labels = obj["metadata"].get("labels") or {}
            if _selected(labels, wanted):
                item = copy.deepcopy(obj)
                item.pop("apiVersion", None)  # LIST items carry neither
                item.pop("kind", None)
                items.append(item)
        return items

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        key = self._checked(*self._key(obj))
        self._hooks("create", key)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{key[1]} "{key[3]}" already exists')
        if obj["metadata"].get("resourceVersion"):
            raise ApiError(422, "Invalid", "resourceVersion should not be set on create")
        stored = copy.deepcopy(obj)
        stored["metadata"].pop("uid", None)
        self.writes.append(("create", key))
        return self.put(stored)

    def apply(
        self, obj: dict[str, Any], field_manager: str = "mlkube-operator", subresource: str = ""
    ) -> dict[str, Any]:
        key = self._checked(*self._key(obj))
        self._hooks("apply", key)
        current = self.objects.get(key)
        uid = (obj.get("metadata") or {}).get("uid")
        if current is None and uid:
            message = f"uid mismatch: the provided object specified uid {uid}, and no existing"
            raise ApiError(409, "Conflict", message + " object was found")
        self._preconditions(key, current, obj.get("metadata") or {})
        self.writes.append(("apply", key))
        if current is None:
            stored = copy.deepcopy(obj)
            stored["metadata"].pop("resourceVersion", None)
            return self.put(stored)
        merged = copy.deepcopy(current)
        for part, value in obj.items():
            if part == "metadata":
                _merge_metadata(merged["metadata"], value)
            elif part not in ("apiVersion", "kind"):
                merged[part] = copy.deepcopy(value)  # force: the applier takes the fields
        return self._store(key, current, merged)

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
        key = self._checked(api_version, kind, namespace, name)
        self._hooks("patch/" + subresource if subresource else "patch", key)
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, "NotFound", f'{kind} "{name}" not found')
        self._preconditions(key, current, patch.get("metadata") or {})
        body = copy.deepcopy(patch)
        (body.get("metadata") or {}).pop("resourceVersion", None)
        if subresource == "status":
            body = {"status": body["status"]} if "status" in body else {}
        elif kind in (
            "Model",
            "OnlineEndpoint",
            "BatchEndpoint",
            "BatchJob",
            "Pipeline",
            "PipelineRun",
        ):
            body.pop("status", None)  # the status subresource is separate for custom kinds
        self.writes.append(("patch/" + subresource if subresource else "patch", key))
        return self._store(key, current, _merge_patch(current, body))

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> bool:
        key = self._checked(api_version, kind, namespace, name)
        self._hooks("delete", key)
        current = self.objects.get(key)
        if current is None:
            return False
        if uid and current["metadata"]["uid"] != uid:
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {uid}")
        self.writes.append(("delete", key))
        del self.objects[key]
        self._collect_garbage(current["metadata"]["uid"])
        return True

    def served_kinds(self, api_version: str, max_age: float | None = None) -> set[str]:
        return {kind for av, kind in self.kinds if av == api_version}

    # -- internals -------------------------------------------------------------------------
    def _key(self, obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "default", meta["name"])

    def _checked(self, api_version: str, kind: str, namespace: str | None, name: str) -> Key:
        if (api_version, kind) not in self.kinds:
            raise ApiError(404, "KindNotServed", f"the API server serves no kind {kind}")
        return (api_version, kind, namespace or "default", name)

    def _hooks(self, verb: str, key: Key) -> None:
        for hook in list(self.before):
            hook(verb, key)

    def _preconditions(
        self, key: Key, current: dict[str, Any] | None, meta: dict[str, Any]
    ) -> None:
        version, uid = meta.get("resourceVersion"), meta.get("uid")
        if (version or uid) and current is None:
            raise ApiError(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        if current is None:
            return
        if version and version != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified; please apply your "
                           "changes to the latest version and try again")  # fmt: skip
        if uid and uid != current["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {uid}")

    def _store(self, key: Key, current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        if new == current:
            return copy.deepcopy(current)  # a no-op write keeps the resourceVersion
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = new
        return copy.deepcopy(new)

    def _collect_garbage(self, owner_uid: str) -> None:
        dependents = [
            key
            for key, obj in self.objects.items()
            if any(r.get("uid") == owner_uid for r in obj["metadata"].get("ownerReferences") or [])
        ]
        for key in dependents:
            gone = self.objects.pop(key, None)
            if gone is not None:
                self._collect_garbage(gone["metadata"]["uid"])


def _parse_selector(selector: str | None) -> list[tuple[str, str | frozenset[str] | None]]:
    """Terms of a label selector: (key, value) for `key=value`, (key, values) for
    `key in (a,b)`, (key, None) for `key` (exists)."""
    wanted: list[tuple[str, str | frozenset[str] | None]] = []
    for term in re.split(r",(?![^()]*\))", selector or ""):
        if not term.strip():
            continue
        found = re.fullmatch(r"\s*(\S+)\s+in\s+\(([^()]*)\)\s*", term)
        if found:
            values = frozenset(v.strip() for v in found.group(2).split(","))
            wanted.append((found.group(1), values))
        elif "=" in term:
            name, value = term.split("=", 1)
            wanted.append((name.strip(), value.strip()))
        else:
            wanted.append((term.strip(), None))
    return wanted


def _selected(
    labels: dict[str, str], wanted: list[tuple[str, str | frozenset[str] | None]]
) -> bool:
    for key, value in wanted:
        if value is None:
            if key not in labels:
                return False
        elif isinstance(value, frozenset):
            if labels.get(key) not in value:
                return False
        elif labels.get(key) != value:
            return False
    return True


def _merge_metadata(current: dict[str, Any], applied: dict[str, Any]) -> None:
    """Apply's metadata semantics: maps merge, owner references merge by uid."""
    for name in ("labels", "annotations"):
        if applied.get(name):
            current[name] = {**(current.get(name) or {}), **applied[name]}
    refs = {r["uid"]: r for r in current.get("ownerReferences") or []}
    for ref in applied.get("ownerReferences") or []:
        refs[ref["uid"]] = copy.deepcopy(ref)
    if refs:
        current["ownerReferences"] = list(refs.values())


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = _merge_patch(result.get(name), value)
    return result
