"""The batch scorer end to end on real files: plan -> score (2 indexes, worker processes) ->
merge, predictions equal to `model.predict` on the whole input, exact counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from tests.process.batch.conftest import batch, read_output, write_inputs

from mlkube.api.batch_job import PlanSummary
from mlkube.reconcile.batch_progress import parse_progress, sum_progress


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("fmt", "out_fmt"), [("csv", "csv"), ("jsonl", "jsonl"), ("parquet", "parquet")]
)
def test_predictions_equal_model_predict(
    tmp_path: Path, model: tuple[Path, LogisticRegression], fmt: str, out_fmt: str
) -> None:
    whole = write_inputs(tmp_path / "in", fmt)
    out = tmp_path / "out"
    planned = batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}",
                    "--mini-batch-size", "100rows")  # fmt: skip
    assert planned.code == 0, planned.stderr
    summary = planned.summary()
    assert summary["miniBatches"] >= 10
    for index in (0, 1):
        scored = batch("score", "--output", f"file://{out}", "--model", str(model[0]),
                       "--index", str(index), "--indexes", "2", "--concurrency", "2",
                       "--output-format", out_fmt, "--plan-digest", summary["digest"])  # fmt: skip
        assert scored.code == 0, scored.stderr
        progress = _json(out / "_mlkube" / "progress" / f"index-{index:05d}.json")
        assert progress["done"] is True and progress["items"]["failed"] == 0
    name = f"predictions.{out_fmt}"
    merged = batch("merge", "--output", f"file://{out}", "--file-name", name,
                   "--output-format", out_fmt)  # fmt: skip
    assert merged.code == 0, merged.stderr
    manifest = merged.summary()
    assert manifest["items"] == {"total": len(whole), "succeeded": len(whole), "failed": 0}
    # The operator's reading of the progress files agrees with the merge's exact counts.
    plan = PlanSummary(
        digest=summary["digest"], uri=f"file://{out}/_mlkube/plan.json",
        mini_batches=summary["miniBatches"], items=summary["items"],
        items_estimated=summary["itemsEstimated"], indexes=2,
    )  # fmt: skip
    files = sorted((out / "_mlkube" / "progress").glob("index-*.json"))
    docs = [parse_progress(f.read_bytes(), summary["digest"]) for f in files]
    seen = sum_progress(plan, [d for d in docs if d])
    assert seen.items.model_dump() == manifest["items"] and seen.percent == 100
    got = read_output(out / name, out_fmt)["prediction"].to_numpy()
    np.testing.assert_array_equal(got, model[1].predict(whole))


def test_plan_digest_mismatch_is_refused(tmp_path: Path, model: tuple[Path, Any]) -> None:
    write_inputs(tmp_path / "in", "csv", (10,))
    out = f"file://{tmp_path}/out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", out).code == 0
    scored = batch("score", "--output", out, "--model", str(model[0]),
                   "--plan-digest", "sha256:" + "0" * 64)  # fmt: skip
    assert scored.code == 43
