"""The Model's audit trail in status: who created it, who last changed it, recent changes.

The webhook stamps identities into annotations at admission time (only it sees userInfo),
each with a proof; the caller passes only proven stamps (`reconcile.audit_proof.trusted_stamps`,
`unknown` otherwise) and this copies them into status with the changed field paths, keeping the
newest entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlkube.contract import ANNOTATION_CREATED_BY, ANNOTATION_LAST_MODIFIED_BY
from mlkube.reconcile.audit_proof import UNKNOWN_USER

HISTORY_LIMIT = 10


def changed_paths(diff: Iterable[Sequence[Any]], prefix: str = "spec") -> list[str]:
    """Dotted field paths from a Kopf diff ((op, field, old, new) tuples), deduplicated."""
    paths: list[str] = []
    for item in diff:
        field = ".".join(str(part) for part in item[1])
        path = f"{prefix}.{field}" if field else prefix
        if path not in paths:
            paths.append(path)
    return paths[:32]


def build_audit_status(
    *,
    annotations: dict[str, str],
    history: list[dict[str, Any]] | None,
    generation: int,
    changes: list[str],
    now: str,
) -> dict[str, Any]:
    """createdBy, lastModifiedBy and history with one entry for `generation` appended."""
    created_by = annotations.get(ANNOTATION_CREATED_BY, UNKNOWN_USER)
    modified_by = annotations.get(ANNOTATION_LAST_MODIFIED_BY, created_by)
    entries = [dict(e) for e in history or [] if e.get("generation") != generation]
    entries.append({"user": modified_by, "time": now, "generation": generation, "changes": changes})
    return {
        "createdBy": created_by,
        "lastModifiedBy": modified_by,
        "history": entries[-HISTORY_LIMIT:],
    }
