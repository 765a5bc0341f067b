"""Pure admission decisions: audit stamps and live-reference checks."""

from __future__ import annotations

from typing import Any

from mlkube.contract import (
    ANNOTATION_CREATED_BY,
    ANNOTATION_CREATED_BY_PROOF,
    ANNOTATION_LAST_MODIFIED_BY,
    ANNOTATION_LAST_MODIFIED_BY_PROOF,
)
from mlkube.reconcile.audit_proof import epoch_of, sign_created, sign_modified

AUDIT_ANNOTATIONS = (
    ANNOTATION_CREATED_BY,
    ANNOTATION_CREATED_BY_PROOF,
    ANNOTATION_LAST_MODIFIED_BY,
    ANNOTATION_LAST_MODIFIED_BY_PROOF,
)


def audit_annotations(
    *,
    operation: str,
    username: str,
    operator_username: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    key: bytes,
    now: int,
) -> dict[str, str]:
    """Annotations to set on a Model write: stamps and their proofs (`audit_proof`).

    CREATE stamps both; an UPDATE that changes spec stamps last-modified-by for the generation
    it produces. Writes by the operator itself and metadata-only writes stamp nothing, but a
    user can never overwrite the stamps or proofs: tampered values are put back.
    """
    new_meta = new.get("metadata") or {}
    old_meta = (old or {}).get("metadata") or {}
    new_ann = new_meta.get("annotations") or {}
    old_ann = old_meta.get("annotations") or {}
    namespace = str(new_meta.get("namespace") or old_meta.get("namespace") or "")
    if operation == "CREATE":
        if username == operator_username:
            return {}
        # A generated name does not exist yet: the proof binds the prefix.
        name = str(new_meta.get("name") or new_meta.get("generateName") or "")
        return {
            ANNOTATION_CREATED_BY: username,
            ANNOTATION_CREATED_BY_PROOF: sign_created(
                key, namespace=namespace, name=name, created=now, user=username
            ),
            ANNOTATION_LAST_MODIFIED_BY: username,
            ANNOTATION_LAST_MODIFIED_BY_PROOF: sign_modified(
                key, namespace=namespace, name=name, created=now, generation=1, user=username
            ),
        }
    stamps = {
        key_: old_ann[key_]
        for key_ in AUDIT_ANNOTATIONS
        if key_ in old_ann and new_ann.get(key_) != old_ann[key_]
    }
    if (old or {}).get("spec") == new.get("spec"):
        return stamps
    # The API server bumps the generation of a custom resource whose spec changes.
    generation = int(old_meta.get("generation") or 1) + 1
    created = epoch_of(old_meta.get("creationTimestamp"))
    user = username if username != operator_username else old_ann.get(ANNOTATION_LAST_MODIFIED_BY)
    if user and created is not None:
        stamps[ANNOTATION_LAST_MODIFIED_BY] = user
        stamps[ANNOTATION_LAST_MODIFIED_BY_PROOF] = sign_modified(
            key, namespace=namespace, name=str(old_meta.get("name") or ""), created=created,
            generation=generation, user=user,
        )  # fmt: skip
    return stamps


def referencing_endpoints(endpoints: list[dict[str, Any]], model: str) -> list[str]:
    """Names of the endpoints whose deployments reference `model` (sorted, for messages)."""
    return sorted(
        ep["metadata"]["name"]
        for ep in endpoints
        if any(d.get("model") == model for d in (ep.get("spec") or {}).get("deployments") or [])
    )
