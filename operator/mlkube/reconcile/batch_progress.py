"""BatchJob counts from the scorer's per-index progress files (docs/batch-endpoints.md §4).

Pure: the controller lists `<output>/_mlkube/progress/`, reads the files (bounded) and calls
`sum_progress`; the result is level-based (an operator restart reads the same files), so
nothing accumulates in memory or status. Files of another plan (a stale output) are ignored;
unreadable or malformed ones count as not yet reported. `items.total` is the planner's
estimate until every index reported `done` (ranges of CSV/JSONL hold *about* N rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlkube.api.batch_job import (
    MAX_ERROR_MESSAGE,
    MAX_LAST_ERRORS,
    BatchError,
    ItemCounts,
    MiniBatchCounts,
    PlanSummary,
)
from mlkube.api.common import MAX_SHORT_TEXT

MAX_PROGRESS_BYTES = 16 * 1024  # a progress file is ≤ 4 KiB; anything larger is not ours


@dataclass(frozen=True)
class Progress:
    mini_batches: MiniBatchCounts
    items: ItemCounts
    percent: int
    last_errors: list[BatchError] = field(default_factory=list)
    indexes_done: int = 0
    reasons: list[str] = field(default_factory=list)
    """Why indexes stopped early (e.g. ErrorThresholdExceeded), in index order."""


def cut(text: str, limit: int) -> str:
    """Head and tail of a long message (the end of a traceback is usually the point)."""
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def parse_progress(data: bytes, plan_digest: str) -> dict[str, Any] | None:
    """One index's progress document, or None when it is not this plan's or malformed."""
    if len(data) > MAX_PROGRESS_BYTES:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("planDigest") != plan_digest:
        return None
    try:
        int(body["index"])
        for key in ("total", "succeeded", "failed", "retried"):
            int(body["miniBatches"][key])
        for key in ("total", "succeeded", "failed"):
            int(body["items"][key])
    except (KeyError, TypeError, ValueError):
        return None
    return body


def _error(raw: Any) -> BatchError | None:
    try:
        item = raw.get("item")
        text = item if isinstance(item, str) or item is None else json.dumps(item, sort_keys=True)
        return BatchError(
            mini_batch=max(0, int(raw["miniBatch"])),
            item=cut(text, MAX_SHORT_TEXT) if text is not None else None,
            message=cut(str(raw["message"]), MAX_ERROR_MESSAGE),
            attempt=max(1, int(raw.get("attempt", 1))),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def sum_progress(plan: PlanSummary, documents: Iterable[dict[str, Any]]) -> Progress:
    """Sum the latest document of each index (later duplicates of an index win)."""
    latest = {int(doc["index"]): doc for doc in documents}
    succeeded = sum(int(d["miniBatches"]["succeeded"]) for d in latest.values())
    failed = sum(int(d["miniBatches"]["failed"]) for d in latest.values())
    retried = sum(int(d["miniBatches"]["retried"]) for d in latest.values())
    done = sum(1 for d in latest.values() if d.get("done") is True)
    reported = {
        k: sum(int(d["items"][k]) for d in latest.values())
        for k in ("total", "succeeded", "failed")
    }
    exact = not plan.items_estimated or (plan.indexes > 0 and done >= plan.indexes)
    total_items = reported["total"] if exact and latest else max(plan.items, reported["total"])
    finished = min(plan.mini_batches, succeeded + failed)
    percent = 100 * finished // plan.mini_batches if plan.mini_batches else 0
    errors = [
        e for i in sorted(latest) for raw in latest[i].get("lastErrors") or [] if (e := _error(raw))
    ]
    reasons = [str(latest[i]["reason"]) for i in sorted(latest) if latest[i].get("reason")]
    return Progress(
        mini_batches=MiniBatchCounts(
            total=plan.mini_batches, succeeded=succeeded, failed=failed, retried=retried
        ),
        items=ItemCounts(
            total=total_items, succeeded=reported["succeeded"], failed=reported["failed"]
        ),
        percent=percent,
        last_errors=errors[-MAX_LAST_ERRORS:],
        indexes_done=done,
        reasons=reasons,
    )
