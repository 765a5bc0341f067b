"""An index's running counts, its error threshold check and its progress document.

Pure. Items are what Azure ML counts against `errorThreshold`: a mini-batch that failed after
its retries counts all its items, a file the model refused counts one. The threshold is
global; an index checks its own counts because local failures above it imply global ones,
so it can stop at once (exit 42) instead of scoring the rest of its shard for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ERRORS = 3
MAX_MESSAGE = 1024


@dataclass
class Tally:
    index: int
    indexes: int
    plan_digest: str
    mini_batches: int
    items_total: int = 0
    succeeded_batches: int = 0
    failed_batches: int = 0
    retried: int = 0
    reused: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    last_errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, record: dict[str, Any], *, reused: bool = False) -> None:
        """Account a committed part (fresh, or a verified one reused from an earlier run)."""
        self.items_total += int(record["items"])
        self.items_succeeded += int(record["succeeded"])
        self.items_failed += int(record["failed"])
        if int(record["succeeded"]) == 0 and int(record["failed"]) > 0:
            self.failed_batches += 1
        else:
            self.succeeded_batches += 1
        self.reused += int(reused)

    def error(self, mini_batch: int, message: str, attempt: int, item: Any = None) -> None:
        entry: dict[str, Any] = {
            "miniBatch": mini_batch,
            "message": message[:MAX_MESSAGE],
            "attempt": attempt,
        }
        if item is not None:
            entry["item"] = item
        self.last_errors = [*self.last_errors, entry][-MAX_ERRORS:]

    def threshold_exceeded(self, threshold: int) -> bool:
        return threshold >= 0 and self.items_failed > threshold

    def progress(self, *, done: bool, reason: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.index,
            "indexes": self.indexes,
            "planDigest": self.plan_digest,
            "done": done,
            "miniBatches": {
                "total": self.mini_batches,
                "succeeded": self.succeeded_batches,
                "failed": self.failed_batches,
                "retried": self.retried,
                "reused": self.reused,
            },
            "items": {
                "total": self.items_total,
                "succeeded": self.items_succeeded,
                "failed": self.items_failed,
            },
            "lastErrors": self.last_errors,
        }
        if reason:
            body["reason"] = reason[:MAX_MESSAGE]
        return body
