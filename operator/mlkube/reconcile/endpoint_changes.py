"""Pure decisions of the endpoint reconcile: what to delete, what to announce, what to patch.

JSON merge patches merge maps key by key, so a key that disappears from a desired map (a
deployment removed from status.traffic) must be sent as null or it survives the patch;
`merge_patch` computes exactly that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlkube.contract import KIND_ONLINE_ENDPOINT

ARROW = "\u2192"


def merge_patch(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning `previous` into `desired` (only what differs; {} if equal)."""
    patch: dict[str, Any] = {}
    for key in previous:
        if key not in desired:
            patch[key] = None
    for key, value in desired.items():
        old = previous.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif key not in previous or old != value:
            patch[key] = value
    return patch


def format_split(split: Mapping[str, int]) -> str:
    """`blue=70 green=30`, or `(none)` for an empty split."""
    return " ".join(f"{k}={v}" for k, v in sorted(split.items())) or "(none)"


def split_applied_before(previous: Mapping[str, Any]) -> bool:
    """Whether the previous status records a split that was served, so that a new applied
    split is a change (Events, lastTrafficChange) rather than the first apply.

    `status.traffic` is written once a split is applied (an empty one included), not while
    the routers have served none yet (none Ready, still loading, refusing it) nor by a pass
    blocked before any was: their first load of the configured split is the first apply, not
    a change from "(none)". observedGeneration absent, or 0 (the CRD's default): no pass
    wrote this status."""
    return bool(previous.get("observedGeneration")) and "traffic" in previous


def traffic_events(
    applied: Mapping[str, Any], traffic: Mapping[str, int] | None, mirror: Mapping[str, int]
) -> list[tuple[str, str]]:
    """(reason, message) Events for a change from the applied split to the new one.

    Nothing on the first apply (`split_applied_before`) or when nothing changed.
    """
    if traffic is None or not split_applied_before(applied):
        return []
    events = []
    old_traffic = dict(applied.get("traffic") or {})
    if old_traffic != dict(traffic):
        events.append(
            (
                "TrafficChanged",
                f"traffic {format_split(old_traffic)} {ARROW} {format_split(traffic)}",
            )
        )
    old_mirror = dict(applied.get("mirror") or {})
    new_mirror = {k: v for k, v in mirror.items() if v > 0}
    if old_mirror != new_mirror:
        events.append(
            (
                "MirrorChanged",
                f"mirror {format_split(old_mirror)} {ARROW} {format_split(new_mirror)}",
            )
        )
    return events


def stale_children(
    live: Iterable[Mapping[str, Any]],
    api_version: str,
    kind: str,
    desired: set[tuple[str, str, str]],
    owner_uid: str,
) -> list[str]:
    """Names of live children of one kind this endpoint controls but no longer desires.

    `live` comes from a LIST, whose items carry no apiVersion/kind, hence the arguments.

    Only objects whose controller reference points at this endpoint's uid are candidates, so a
    same-named endpoint recreated later never deletes what the new one owns (and nothing a
    user labelled by hand is touched).
    """
    stale = []
    for obj in live:
        meta = obj.get("metadata") or {}
        key = (api_version, kind, str(meta.get("name")))
        owned = any(
            ref.get("uid") == owner_uid and ref.get("controller")
            for ref in meta.get("ownerReferences") or []
        )
        if owned and key not in desired and not meta.get("deletionTimestamp"):
            stale.append(key[2])
    return stale


def endpoint_reference(
    name: str, namespace: str, kind: str = KIND_ONLINE_ENDPOINT
) -> dict[str, str]:
    """A Model's `deployedBy` entry for an endpoint (OnlineEndpoint or BatchEndpoint)."""
    return {"kind": kind, "name": name, "namespace": namespace}


def with_reference(
    refs: Iterable[Mapping[str, Any]], ref: Mapping[str, str], present: bool
) -> list[dict[str, Any]] | None:
    """deployedBy with `ref` added (present) or removed; None when that changes nothing."""
    current = [dict(r) for r in refs]
    matches = [r for r in current if all(r.get(key) == value for key, value in ref.items())]
    if present and not matches:
        return [*current, dict(ref)]
    if not present and matches:
        return [r for r in current if r not in matches]
    return None
