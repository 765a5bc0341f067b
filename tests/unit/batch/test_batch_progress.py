"""The operator's view of the scorer's progress files: sums, stale plans, estimated totals."""

from __future__ import annotations

import json
from typing import Any

from mlkube.api.batch_job import PlanSummary
from mlkube.reconcile.batch_progress import cut, parse_progress, sum_progress

DIGEST = "sha256:" + "a" * 64


def _doc(index: int, ok: int, bad: int, items: int, failed: int, done: bool) -> dict[str, Any]:
    return {
        "index": index, "indexes": 2, "planDigest": DIGEST, "done": done,
        "miniBatches": {"total": 5, "succeeded": ok, "failed": bad, "retried": 1, "reused": 0},
        "items": {"total": items, "succeeded": items - failed, "failed": failed},
        "lastErrors": [{"miniBatch": 3, "message": "x" * 3000, "attempt": 2,
                        "item": {"path": "a.csv", "start": 0, "end": 10}}],
    }  # fmt: skip


def _plan(estimated: bool) -> PlanSummary:
    return PlanSummary(
        digest=DIGEST, uri="s3://b/out/_mlkube/plan.json", mini_batches=10, items=1000,
        items_estimated=estimated, indexes=2,
    )  # fmt: skip


def _parse(body: dict[str, Any]) -> dict[str, Any] | None:
    return parse_progress(json.dumps(body).encode(), DIGEST)


def test_sums_indexes_and_keeps_the_estimate_until_all_are_done() -> None:
    docs = [_parse(_doc(0, 4, 1, 480, 100, True)), _parse(_doc(1, 2, 0, 190, 0, False))]
    progress = sum_progress(_plan(True), [d for d in docs if d])
    assert progress.mini_batches.succeeded == 6 and progress.mini_batches.failed == 1
    assert progress.mini_batches.retried == 2 and progress.percent == 70
    assert progress.items.total == 1000  # estimate: index 1 is still running
    assert progress.items.failed == 100 and progress.items.succeeded == 570
    error = progress.last_errors[0]
    assert (
        error.attempt == 2 and len(error.message) <= 1024 and '"path": "a.csv"' in str(error.item)
    )
    final = sum_progress(
        _plan(True), [d for d in [docs[0], _parse(_doc(1, 5, 0, 498, 0, True))] if d]
    )
    assert final.items.total == 978 and final.percent == 100  # exact once every index is done


def test_other_plans_and_garbage_are_ignored() -> None:
    other = {**_doc(0, 1, 0, 10, 0, True), "planDigest": "sha256:" + "b" * 64}
    assert _parse(other) is None
    assert parse_progress(b"{not json", DIGEST) is None
    assert parse_progress(b"x" * 20000, DIGEST) is None
    assert _parse({**_doc(0, 1, 0, 10, 0, True), "items": {"total": "many"}}) is None
    assert sum_progress(_plan(False), []).items.total == 1000


def test_cut_keeps_head_and_tail() -> None:
    text = "head" + "-" * 5000 + "tail"
    short = cut(text, 1024)
    assert len(short) <= 1024 and short.startswith("head") and short.endswith("tail")
