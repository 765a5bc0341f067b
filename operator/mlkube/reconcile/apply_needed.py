"""Whether a server-side apply of a child would change anything, so an idle pass writes nothing.

An apply of an unchanged manifest changes no object, but it is still a PATCH the API server
must decode, merge and answer, and every resync of 1,000 endpoints would send thousands of
them (issue 15). The pass already holds the live child, so the apply is skipped when it is
certainly a no-op:

- every field of the manifest is live with the same value (the live object may have more:
  API server defaults, other managers' fields), lists element by element and of equal length;
- our apply entry in `managedFields` owns no field the manifest lacks (an apply that drops a
  field we own removes it from the object), and we hold no Update entry a create left behind
  (`endpoint_ownership.adopt_fields` still has to hand it over).

Anything unexpected (no managedFields, an unknown fieldsV1 key, an extra list item) means
"apply": a needless write costs a request, a skipped one would leave the child wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlkube.contract import FIELD_MANAGER


def apply_needed(manifest: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """True unless applying `manifest` over `live` certainly changes nothing."""
    if live is None:
        return True
    # apiVersion and kind name what was read (items of a LIST response lack them).
    fields = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    if not is_subset(fields, live):
        return True
    entries = (live.get("metadata") or {}).get("managedFields") or []
    ours = [e for e in entries if e.get("manager") == FIELD_MANAGER and not e.get("subresource")]
    if any(e.get("operation") != "Apply" for e in ours):
        return True  # a create's Update entry: adopting it is a write the pass must make
    applied = [e for e in ours if e.get("fieldsV1") is not None]
    if len(applied) != 1:
        return True
    return not owned_within(applied[0]["fieldsV1"], manifest)


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


def restrict_fields(fields: Mapping[str, Any], desired: Any) -> dict[str, Any]:
    """The part of a FieldsV1 set that names fields of `desired`: what an apply of `desired`
    would own. A create's entry also holds the fields the API server defaulted
    (`dnsPolicy`, a probe's `scheme`); owned by our apply entry they would make every later
    pass look like it drops them (`owned_within`) and apply again."""
    kept: dict[str, Any] = {}
    for key, sub in fields.items():
        if key == ".":
            kept[key] = sub
            continue
        kind, _, rest = key.partition(":")
        child = _child(kind, rest, desired)
        if child is not _MISSING:
            kept[key] = restrict_fields(sub, child) if sub else sub
    return kept


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
