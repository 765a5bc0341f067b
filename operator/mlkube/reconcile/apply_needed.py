"""Whether a server-side apply of a child would change anything, so an idle pass writes nothing.

An apply of an unchanged manifest changes no object, but it is still a PATCH the API server
must decode, merge and answer, and every resync of 1,000 endpoints would send thousands of
them (issue 15). The pass already holds the live child, so the apply is skipped when it is
certainly a no-op:

- every field of the manifest is live with the same value (the live object may have more:
  API server defaults, other managers' fields), lists element by element and of equal length;
- our apply entry in `managedFields` owns no field the manifest lacks (an apply that drops a
  field we own removes it from the object);
- a child is created with one POST (`endpoint_ownership.create_child`), which leaves our
  manager an Update entry owning the manifest it was created from plus what the API server
  defaulted. Fields an Update entry owns survive an apply that drops them, so while that entry
  exists it must own nothing the manifest lacks, or the child must still carry the digest of
  the very manifest it was created from (`MANIFEST_DIGEST`, every child carries the digest of
  its own manifest): then the extra fields are the server's defaults, and nothing was dropped.
  Otherwise the entry is handed over to our apply entry first (`hand_over_first`), so the
  apply removes what the manifest no longer has.

Anything unexpected (no managedFields, an unknown fieldsV1 key, an extra list item) means
"apply": a needless write costs a request, a skipped one would leave the child wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from mlkube.contract import FIELD_MANAGER

# The digest of the manifest a child was last created or applied from (issue 15).
MANIFEST_DIGEST: Final = "mlkube.dev/manifest-digest"


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """A stable digest of `manifest` without its own digest annotation (sorted-key JSON)."""
    text = json.dumps(_without_digest(manifest), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def with_manifest_digest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """`manifest` with `MANIFEST_DIGEST` among its annotations (a copy; builders stay pure)."""
    meta = dict(manifest["metadata"])
    digest = {MANIFEST_DIGEST: manifest_digest(manifest)}
    meta["annotations"] = {**(meta.get("annotations") or {}), **digest}
    return {**manifest, "metadata": meta}


def apply_needed(manifest: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """True unless applying `manifest` over `live` certainly changes nothing."""
    if live is None:
        return True
    created = _entries(live, "Update")
    # apiVersion and kind name what was read (items of a LIST response lack them). The digest
    # matters only while a create's entry exists: children an apply wrote (the previous
    # version's, which carry none) are judged by managedFields alone, so no upgrade rewrite.
    fields = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    if not created:
        fields = _without_digest(fields)
    if not is_subset(fields, live):
        return True
    applied = _entries(live, "Apply")
    if len(applied) > 1 or any(e.get("fieldsV1") is None for e in applied + created):
        return True
    if applied and not owned_within(applied[0]["fieldsV1"], manifest):
        return True
    if not created:
        return not applied  # no entry of ours at all: ownership unknown, apply
    return hand_over_first(manifest, live)


def hand_over_first(manifest: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Our create's Update entry owns fields `manifest` lacks, and `live` was not created from
    this very manifest: some may be fields a newer manifest dropped, which an apply removes
    only once our apply entry owns them (`endpoint_ownership.hand_over`)."""
    want = ((manifest.get("metadata") or {}).get("annotations") or {}).get(MANIFEST_DIGEST)
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(MANIFEST_DIGEST)
    for entry in _entries(live, "Update"):
        if not owned_within(entry.get("fieldsV1") or {}, manifest) and (not want or want != have):
            return True
    return False


def _entries(live: Mapping[str, Any], operation: str) -> list[Mapping[str, Any]]:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return [
        e
        for e in entries
        if e.get("manager") == FIELD_MANAGER
        and e.get("operation") == operation
        and not e.get("subresource")
    ]


def _without_digest(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(MANIFEST_DIGEST, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**obj, "metadata": meta}


def is_subset(desired: Any, live: Any) -> bool:
    """Every field of `desired` is in `live` with the same value (lists: same length)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
    return same_scalar(desired, live)


def same_scalar(desired: Any, live: Any) -> bool:
    """Equal values; numbers by value (JSON 0.0 comes back as 0), but a bool is no number."""
    numbers = (int, float)
    if isinstance(desired, numbers) and isinstance(live, numbers):
        if isinstance(desired, bool) or isinstance(live, bool):
            return type(desired) is type(live) and desired == live
        return bool(desired == live)
    return type(desired) is type(live) and bool(desired == live)


def same_status(desired: Any, live: Any) -> bool:
    """`live` is `desired` as the API server stores it: numbers by value, and keys only
    `live` has hold a zero value (a CRD schema default such as `samplesDropped: 0`)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        extra = [v for k, v in live.items() if k not in desired]
        return all(v in (None, 0, "", [], {}) for v in extra) and all(
            k in live and same_status(v, live[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(same_status(d, v) for d, v in zip(desired, live, strict=True))
    return same_scalar(desired, live)


def owned_within(fields: Mapping[str, Any], desired: Any) -> bool:
    """Every field of a FieldsV1 set (our apply's) is present in `desired`."""
    for key, sub in fields.items():
        if key == ".":
            continue
        kind, _, rest = key.partition(":")
        child = _child(kind, rest, desired)
        if child is _MISSING:
            return False
        if sub and not owned_within(sub, child):
            return False
    return True


_MISSING: Any = object()


def _child(kind: str, rest: str, desired: Any) -> Any:
    """The part of `desired` a FieldsV1 key names (`_MISSING` if absent or not understood)."""
    if kind == "f":
        return desired[rest] if isinstance(desired, Mapping) and rest in desired else _MISSING
    if not isinstance(desired, list):
        return _MISSING
    if kind == "k":
        keys = json.loads(rest)
        return next((item for item in desired if _matches(item, keys)), _MISSING)
    if kind == "v":
        value = json.loads(rest)
        return value if value in desired else _MISSING
    if kind == "i" and rest.isdigit() and int(rest) < len(desired):
        return desired[int(rest)]
    return _MISSING


def _matches(item: Any, keys: Mapping[str, Any]) -> bool:
    """A list item named by merge keys; a key the manifest leaves to the server's default
    (a port's protocol) matches whatever the server filled in."""
    if not isinstance(item, Mapping):
        return False
    given = [k for k in keys if k in item]
    return bool(given) and all(item[k] == keys[k] for k in given)
