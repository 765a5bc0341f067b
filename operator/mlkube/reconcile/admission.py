"""Pure admission decisions: audit stamps and live-reference checks."""

from __future__ import annotations

from typing import Any

from mlkube.contract import ANNOTATION_CREATED_BY, ANNOTATION_LAST_MODIFIED_BY


def audit_annotations(
    *,
    operation: str,
    username: str,
    operator_username: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
) -> dict[str, str]:
    """Annotations to set on a Model write.

    CREATE stamps both; an UPDATE that changes spec stamps last-modified-by. Writes by the
    operator itself and metadata-only writes stamp nothing, but a user can never overwrite the
    stamps: tampered values are put back.
    """
    new_ann = (new.get("metadata") or {}).get("annotations") or {}
    old_ann = ((old or {}).get("metadata") or {}).get("annotations") or {}
    if operation == "CREATE":
        if username == operator_username:
            return {}
        return {ANNOTATION_CREATED_BY: username, ANNOTATION_LAST_MODIFIED_BY: username}
    stamps = {
        key: old_ann[key]
        for key in (ANNOTATION_CREATED_BY, ANNOTATION_LAST_MODIFIED_BY)
        if key in old_ann and new_ann.get(key) != old_ann[key]
    }
    spec_changed = (old or {}).get("spec") != new.get("spec")
    if spec_changed and username != operator_username:
        stamps[ANNOTATION_LAST_MODIFIED_BY] = username
    return stamps


def referencing_endpoints(endpoints: list[dict[str, Any]], model: str) -> list[str]:
    """Names of the endpoints whose deployments reference `model` (sorted, for messages)."""
    return sorted(
        ep["metadata"]["name"]
        for ep in endpoints
        if any(d.get("model") == model for d in (ep.get("spec") or {}).get("deployments") or [])
    )
