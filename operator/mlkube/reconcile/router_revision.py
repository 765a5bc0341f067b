"""The router config's monotonic `revision`, derived from the ConfigMap already in the cluster.

Routers accept a pushed config only when its revision is newer than the one they serve, and
ignore a mounted file older than it (docs/rollouts.md §6), so the operator must never hand
out a revision twice for different content, nor a lower one. Deriving it from the ConfigMap
(the source of truth every replica and every operator restart sees) needs no extra state:
unchanged content keeps its revision, changed content gets the previous one + 1. A new
ConfigMap (none yet, or one without a readable revision) starts at the current Unix time in
seconds: a ConfigMap deleted and re-created while routers still serve the old one's revision
starts above it (unless that one changed more often than once a second over its whole life),
so those routers take the new file and pushes instead of refusing them as older.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

REVISION_KEY: Final = "revision"


def config_document(text: str | None) -> dict[str, Any] | None:
    """The JSON object a ConfigMap's config file holds, or None (missing or not an object)."""
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def config_revision(text: str | None) -> int | None:
    """The revision a config file carries (None: no file, no revision, or not a valid one)."""
    doc = config_document(text)
    value = (doc or {}).get(REVISION_KEY)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def without_revision(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != REVISION_KEY}


def derive_revision(existing_text: str | None, desired: Mapping[str, Any], now: float) -> int:
    """The revision to write for `desired` (a config document; its own revision is ignored)
    given the file the ConfigMap holds now (`existing_text`, None when there is none).

    `now` is the Unix time in seconds, used only for a ConfigMap without a revision.
    """
    previous = config_revision(existing_text)
    if previous is None:
        return max(1, int(now))
    existing = config_document(existing_text) or {}
    if without_revision(existing) == without_revision(desired):
        return previous
    return previous + 1
