"""Keep Kopf's diff-base small enough for an annotation, whatever a valid object holds.

Kopf stores the last handled "essence" (spec, labels, annotations) as JSON in one annotation,
and all annotations of an object share 256 KiB. A CRD-valid Model can carry far more (lineage
parameters alone allow 64 x 4 KiB, a signature 1024 tensors), so the annotation patch failed
and the object never got a status. Here every subtree below `spec`/`metadata` whose JSON exceeds
`subtree_limit` is replaced by a digest of its content. The rule depends only on the subtree
itself, so the same object always compacts the same way: an unchanged object has no diff, and
a changed large field shows up as a change of that field's path (old and new digests), which
is all handlers need (the Model's audit trail records paths). Pure; no Kopf import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Final

SUBTREE_LIMIT: Final = 4096
# Far below the 256 KiB all annotations share: the user's own annotations need room too.
TOTAL_LIMIT: Final = 64 * 1024
MARK: Final = "mlkube.dev/compacted"


def json_size(value: object) -> int:
    """Bytes of `value` as Kopf writes it (compact separators, ASCII escapes)."""
    return len(json.dumps(value, separators=(",", ":")))


def digest_of(value: object) -> str:
    """The placeholder for a subtree: its canonical digest and original size."""
    canonical = json.dumps(value, separators=(",", ":"), sort_keys=True)
    hexdigest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{MARK} sha256:{hexdigest} ({len(canonical)} bytes)"


def _compact(value: object, depth: int, keep_depth: int, limit: int) -> object:
    # A subtree within the limit has no descendant over it (a part's JSON is shorter than the
    # whole's) and is not digested itself: one size per small subtree, not one per node
    # (measuring every node was most of the operator's CPU per watch event).
    if json_size(value) <= limit:
        return value
    if isinstance(value, dict):
        value = {k: _compact(v, depth + 1, keep_depth, limit) for k, v in value.items()}
    elif isinstance(value, list):
        value = [_compact(v, depth + 1, keep_depth, limit) for v in value]
    if depth >= keep_depth and json_size(value) > limit:
        return digest_of(value)
    return value


def compact_essence(
    essence: Mapping[str, object],
    *,
    subtree_limit: int = SUBTREE_LIMIT,
    total_limit: int = TOTAL_LIMIT,
) -> dict[str, object]:
    """`essence` with oversized subtrees (depth >= 2: spec.x, metadata.annotations) digested.

    Stanzas (`spec`, `metadata`) stay open so diffs keep field paths; only if the schema ever
    allowed so many keys that they still exceed `total_limit` are whole stanzas digested.
    """
    if json_size(essence) <= min(subtree_limit, total_limit):
        return dict(essence)  # nothing can be over either limit
    compact = {k: _compact(v, 1, 2, subtree_limit) for k, v in essence.items()}
    if json_size(compact) <= total_limit:
        return compact
    return {k: _compact(v, 1, 1, subtree_limit) for k, v in essence.items()}
