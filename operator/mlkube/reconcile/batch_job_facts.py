"""What the BatchJob controller observed, reduced to facts the state machine decides on (pure).

Jobs are read through their conditions only (Complete, Failed or FailureTarget, Suspended),
never through pod counts, because the Job controller owns those. The plan step's summary and
the merge manifest arrive as JSON text (a pod's termination message, or the copy in the output
store when the pod is gone); parsing here refuses anything that is not ours rather than
trusting it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from mlkube.api.batch_job import ItemCounts, MiniBatchCounts

MAX_SUMMARY_BYTES = 16 * 1024  # summaries are ≤ 4 KiB; a bigger file is not ours
Finished = Literal["Complete", "Failed"]


@dataclass(frozen=True)
class JobFacts:
    """One of the BatchJob's Jobs as seen now."""

    name: str
    finished: Finished | None = None
    reason: str = ""
    message: str = ""
    suspended: bool = False
    completed_indexes: tuple[int, ...] = ()
    failed_indexes: tuple[int, ...] = ()


@dataclass(frozen=True)
class PlanResult:
    """The plan step's summary: the plan's totals, or (resume) the work list's, or an error."""

    digest: str = ""
    mini_batches: int = 0
    items: int = 0
    items_estimated: bool = False
    remaining: int | None = None  # resume: mini-batches left to run
    invalidated: int = 0  # resume: good parts made by another model or settings
    error: str | None = None


@dataclass(frozen=True)
class MergeResult:
    """The merge manifest's totals (final counts), or the merge step's error."""

    mini_batches: MiniBatchCounts | None = None
    items: ItemCounts | None = None
    error: str | None = None


def job_facts(job: dict[str, Any]) -> JobFacts:
    status = job.get("status") or {}
    finished: Finished | None = None
    reason = message = ""
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        # FailureTarget: the Job controller decided the Job fails (podFailurePolicy FailJob,
        # an exhausted backoff) and is terminating its pods; since Kubernetes 1.31 `Failed`
        # follows only once they are gone, up to a grace period later on a real node.
        if cond.get("type") in ("Complete", "Failed", "FailureTarget"):
            finished = "Complete" if cond["type"] == "Complete" else "Failed"
            reason, message = str(cond.get("reason") or ""), str(cond.get("message") or "")
    return JobFacts(
        name=str((job.get("metadata") or {}).get("name", "")),
        finished=finished,
        reason=reason,
        message=message,
        suspended=bool((job.get("spec") or {}).get("suspend")),
        completed_indexes=index_set(status.get("completedIndexes")),
        failed_indexes=index_set(status.get("failedIndexes")),
    )


def index_set(text: Any, limit: int = 100_000) -> tuple[int, ...]:
    """`"0-2,5"` (an Indexed Job's completedIndexes/failedIndexes) as (0, 1, 2, 5); anything
    malformed reads as none (the Job controller writes these; a fallback must not crash)."""
    if not isinstance(text, str) or not text.strip():
        return ()
    out: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first or len(out) + last - first >= limit:
                return ()
            out.extend(range(first, last + 1))
    except ValueError:
        return ()
    return tuple(sorted(set(out)))


def _last_json(text: str | bytes | None, limit: int = MAX_SUMMARY_BYTES) -> dict[str, Any] | None:
    if text is None or len(text) > limit:
        return None
    raw = text.decode(errors="replace") if isinstance(text, bytes) else text
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        body = json.loads(lines[-1])
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def parse_plan_result(text: str | bytes | None, *, resume: bool = False) -> PlanResult | None:
    """The summary a plan (or, `resume`, work) step printed; None when there is none yet.
    A crashed step's log tail (FallbackToLogsOnError) becomes the error."""
    body = _last_json(text)
    if body is None:
        if text:
            tail = text.decode(errors="replace") if isinstance(text, bytes) else text
            return PlanResult(error=tail.strip()[-1024:] or "no summary")
        return None
    if "error" in body:
        return PlanResult(error=str(body["error"])[:2048])
    try:
        if resume:
            return PlanResult(
                digest=str(body["digest"]),
                remaining=_count(body["remaining"]),
                invalidated=_count(body.get("invalidated", 0)),
            )
        return PlanResult(
            digest=str(body["digest"]),
            mini_batches=_count(body["miniBatches"]),
            items=_count(body["items"]),
            items_estimated=bool(body.get("itemsEstimated", False)),
        )
    except (KeyError, ValueError) as err:
        return PlanResult(error=f"unreadable plan summary: {err}")


def parse_merge_result(
    text: str | bytes | None, limit: int = MAX_SUMMARY_BYTES
) -> MergeResult | None:
    """Totals of the merge manifest (or the merge step's summary, the same without parts);
    `limit`: the manifest file lists every part, so its caller allows more bytes."""
    body = _last_json(text, limit)
    if body is None:
        return None
    if "error" in body:
        return MergeResult(error=str(body["error"])[:2048])
    try:
        mbs, items = body["miniBatches"], body["items"]
        return MergeResult(
            mini_batches=MiniBatchCounts(
                total=_count(mbs["total"]),
                succeeded=_count(mbs["succeeded"]),
                failed=_count(mbs["failed"]),
                retried=_count(mbs.get("retried", 0)),
            ),
            items=ItemCounts(
                total=_count(items["total"]),
                succeeded=_count(items["succeeded"]),
                failed=_count(items["failed"]),
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        return MergeResult(error=f"unreadable merge manifest: {err}")
