"""Writing an endpoint's children without ever touching someone else's object.

Force server-side apply takes over whatever sits at a name: a user's Secret, another
endpoint's Service. So every child is read first: an absent one is created (POST: a name
taken in the meantime answers 409, nothing is merged), one this endpoint controls (controller
owner reference with its uid) is applied with its uid as a precondition, and anything else is
a NameConflict: nothing of the endpoint is written. Create-only children (the API keys
Secret) are never written again once they exist: their content belongs to whoever rotates
them.

A create is that one POST: the Update entry it leaves in `managedFields` stays until the
child's manifest really changes (`reconcile/apply_needed.py` tells a create-then-idle child
from a changed one by the manifest digest each child carries); only then is it handed over
to our apply entry, right before the apply that needs it (issue 15: one write per new child).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from mlkube.builders.endpoint import child_key
from mlkube.builders.endpoint_status import Blocker
from mlkube.builders.names import EndpointRef
from mlkube.contract import FIELD_MANAGER
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.apply_needed import apply_needed, hand_over_first

NAME_CONFLICT: Final = "NameConflict"
HAND_OVER_ATTEMPTS: Final = 5


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def is_ours(obj: Mapping[str, Any], owner: EndpointRef) -> bool:
    """Controlled by this very endpoint (uid, not name: a recreated endpoint is another one).

    Our managed-by label is not required to write (the apply puts it back if someone removed
    it); prune requires both, as it lists children by that label.
    """
    return (controller_of(obj) or {}).get("uid") == owner.uid


def holder(obj: Mapping[str, Any]) -> str:
    ref = controller_of(obj)
    if ref is None:
        return "has no controller (created outside mlkube)"
    return f"is controlled by {ref.get('kind')} {ref.get('name')}"


def conflict_blocker(conflicts: list[str]) -> Blocker:
    return Blocker(
        NAME_CONFLICT,
        "; ".join(conflicts) + ": mlkube never modifies or deletes an object it does not "
        "control; rename or remove it (or rename the endpoint/deployment)",
        degraded=True,
    )


def write_children(
    kube: Kube,
    owner: EndpointRef,
    children: Iterable[dict[str, Any]],
    create_only: Collection[tuple[str, str, str]] = (),
) -> list[Blocker]:
    """Create or apply every child; [NameConflict] (nothing written) when a name is taken."""
    children = list(children)
    live: dict[tuple[str, str, str], dict[str, Any] | None] = {}
    conflicts = []
    for child in children:
        api_version, kind, name = key = child_key(child)
        live[key] = found = kube.get(api_version, kind, name, owner.namespace)
        if found is not None and not is_ours(found, owner):
            conflicts.append(f"{kind} {name} already exists and {holder(found)}")
    if conflicts:
        return [conflict_blocker(conflicts)]
    for child in children:
        key = child_key(child)
        current = live[key]
        if current is None:
            problem = create_child(kube, owner, child)
            if problem:
                return [conflict_blocker([problem])]
        elif key not in create_only:
            apply_child(kube, child, current)
    return []


def create_child(kube: Kube, owner: EndpointRef, child: dict[str, Any]) -> str | None:
    """POST the child; a conflict message when the name was taken since we looked.

    One write: the create's field ownership (our manager, operation Update) is left as it is
    until a changed manifest needs it handed over (`apply_child`); create-only children (the
    keys Secret: no Secret patch right) never need it."""
    try:
        kube.create(child, field_manager=FIELD_MANAGER)
    except ApiError as err:
        if err.status != 409:
            raise
        _, kind, name = child_key(child)
        taken = kube.get(child["apiVersion"], kind, name, owner.namespace)
        if taken is None or is_ours(taken, owner):
            return None  # gone again, or our own concurrent pass: the next pass applies it
        return f"{kind} {name} already exists and {holder(taken)}"
    return None


def apply_child(kube: Kube, child: dict[str, Any], current: Mapping[str, Any]) -> None:
    """Server-side apply over our own object only: its uid is a precondition (409/422 if the
    name now holds another object, and the pass is retried). Skipped when the live object
    already is what the apply would make it (reconcile/apply_needed.py); a create's field
    ownership that may hold fields the manifest dropped is handed over first."""
    meta = {**child["metadata"], "uid": current["metadata"]["uid"]}
    body = {**child, "metadata": meta}
    if not apply_needed(body, current):  # an idle pass (resync, restart) writes nothing
        return
    if hand_over_first(body, current):
        hand_over(kube, current)
    kube.apply(body)


def hand_over(kube: Kube, obj: Mapping[str, Any]) -> None:
    """Turn the create's field ownership (our manager, operation Update) into our apply's.

    Fields owned only by an Update entry survive an apply that drops them, so a field removed
    from the manifest would linger on the child forever. The entry goes whole (the manifest
    it was created from is gone; the server's defaults it also holds are dropped by the apply
    and defaulted again). The rewrite is guarded by resourceVersion (a Deployment's status
    moves under us: read again and retry); if it keeps conflicting, the 409 fails the pass,
    which is retried: applying without it would record the new digest and hide the drop.
    """
    api_version, kind, name = child_key(obj)
    namespace = obj["metadata"].get("namespace")
    uid = obj["metadata"].get("uid")
    current: Mapping[str, Any] | None = obj
    for attempt in range(HAND_OVER_ATTEMPTS):
        if current is None or current["metadata"].get("uid") != uid:
            return  # gone or replaced: the uid-guarded apply fails and the pass is retried
        patch = managed_fields_patch(current)
        if patch is None:
            return  # nothing left to hand over
        try:
            kube.patch(api_version, kind, name, patch, namespace)
            return
        except ApiError as err:
            if err.status == 404:
                return
            if err.status != 409 or attempt == HAND_OVER_ATTEMPTS - 1:
                raise
        current = kube.get(api_version, kind, name, namespace)


def managed_fields_patch(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch moving our Update entries' fields into our Apply entry (None: nothing)."""
    meta = obj.get("metadata") or {}
    managed = [dict(m) for m in meta.get("managedFields") or []]
    created = [m for m in managed if _ours(m, "Update")]
    if not created:
        return None
    rest = [m for m in managed if not _ours(m, "Update")]
    applied = next((m for m in rest if _ours(m, "Apply")), None)
    if applied is None:
        rest.append({**created[0], "operation": "Apply"})
        created = created[1:]
        applied = rest[-1]
    for entry in created:
        applied["fieldsV1"] = _union(applied.get("fieldsV1") or {}, entry.get("fieldsV1") or {})
    return {"metadata": {"managedFields": rest, "resourceVersion": meta["resourceVersion"]}}


def _ours(entry: Mapping[str, Any], operation: str) -> bool:
    return (
        entry.get("manager") == FIELD_MANAGER
        and entry.get("operation") == operation
        and not entry.get("subresource")
    )


def _union(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """Union of two FieldsV1 sets (nested maps; leaves are {})."""
    merged = dict(left)
    for key, value in right.items():
        merged[key] = _union(merged[key], value) if key in merged else value
    return merged
