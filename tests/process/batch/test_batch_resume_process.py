"""Rerunning and resuming: the merge is idempotent, and a rerun of an index scores only the
mini-batches without a verified part (a corrupted part or a missing record is redone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tests.process.batch.conftest import batch, read_output, write_inputs


def _run(out: Path, model: Path) -> dict[str, Any]:
    scored = batch("score", "--output", f"file://{out}", "--model", str(model))
    assert scored.code == 0, scored.stderr
    progress: dict[str, Any] = json.loads((out / "_mlkube/progress/index-00000.json").read_text())
    return progress


def test_merge_is_idempotent_and_resume_skips_verified_parts(tmp_path: Path, model: Any) -> None:
    whole = write_inputs(tmp_path / "in", "csv", (300, 200))
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}",
                 "--mini-batch-size", "50rows").code == 0  # fmt: skip
    first = _run(out, model[0])
    total = first["miniBatches"]["total"]
    assert total >= 8 and first["miniBatches"]["reused"] == 0

    merged = batch("merge", "--output", f"file://{out}")
    assert merged.code == 0 and "unchanged" not in merged.summary()
    target = out / "predictions.csv"
    stamp = target.stat().st_mtime_ns
    again = batch("merge", "--output", f"file://{out}")
    assert again.code == 0 and again.summary()["unchanged"] is True
    assert target.stat().st_mtime_ns == stamp  # nothing rewritten

    parts = out / "_mlkube/parts"
    (parts / "mb-000000001.csv").write_text("prediction\n9\n")  # bytes no longer match
    (parts / "mb-000000004.json").unlink()  # a part never committed (worker killed)
    second = _run(out, model[0])
    assert second["miniBatches"]["reused"] == total - 2
    assert second["items"]["succeeded"] == len(whole)

    # Scoring is deterministic: the redone parts have the same digests, the merge stands.
    assert batch("merge", "--output", f"file://{out}").summary()["unchanged"] is True
    target.write_text("prediction\n")  # a damaged merged file is detected and rewritten
    remerged = batch("merge", "--output", f"file://{out}")
    assert remerged.code == 0 and "unchanged" not in remerged.summary()
    got = read_output(target, "csv")["prediction"].to_numpy()
    np.testing.assert_array_equal(got, model[1].predict(whole))


def test_merge_refuses_missing_parts(tmp_path: Path, model: Any) -> None:
    write_inputs(tmp_path / "in", "csv", (30,))
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}",
                 "--mini-batch-size", "10rows").code == 0  # fmt: skip
    merged = batch("merge", "--output", f"file://{out}")
    assert merged.code == 43
    assert "have no verified part" in merged.summary()["error"]
    assert not (out / "predictions.csv").exists()


def test_resume_work_list_runs_only_what_is_missing_or_failed(tmp_path: Path, model: Any) -> None:
    whole = write_inputs(tmp_path / "in", "jsonl", (120, 80))
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}",
                 "--mini-batch-size", "40rows").code == 0  # fmt: skip
    scored = batch("score", "--output", f"file://{out}", "--model", str(model[0]),
                   "--model-digest", "sha256:m1", "--index", "0", "--indexes", "2")  # fmt: skip
    assert scored.code == 0, scored.stderr  # the first job stopped after half of its indexes
    work = batch("work", "--output", f"file://{out}", "--job", "resume-1",
                 "--model-digest", "sha256:m1")  # fmt: skip
    assert work.code == 0, work.stderr
    summary = work.summary()
    assert summary["reused"] > 0 and summary["remaining"] > 0
    for index in ("0", "1"):
        again = batch("score", "--output", f"file://{out}", "--model", str(model[0]),
                      "--model-digest", "sha256:m1", "--work", summary["work"],
                      "--index", index, "--indexes", "2")  # fmt: skip
        assert again.code == 0, again.stderr
        progress = json.loads((out / f"_mlkube/progress/index-0000{index}.json").read_text())
        assert progress["miniBatches"]["reused"] == 0  # the list holds only missing work
    # A second `work` keeps the first list (create-only), even now that every part exists.
    assert batch("work", "--output", f"file://{out}", "--job", "resume-1",
                 "--model-digest", "sha256:m1").summary() == summary  # fmt: skip
    merged = batch("merge", "--output", f"file://{out}")
    assert merged.code == 0, merged.stderr
    got = read_output(out / "predictions.csv", "csv")["prediction"].to_numpy()
    np.testing.assert_array_equal(got, model[1].predict(whole))
    # Another model digest invalidates every part: a resume with it reruns everything.
    other = batch("work", "--output", f"file://{out}", "--job", "resume-2",
                  "--model-digest", "sha256:m2").summary()  # fmt: skip
    assert other["reused"] == 0 and other["remaining"] == merged.summary()["miniBatches"]["total"]
