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
    # The first job's progress files are gone: the operator must not add them to this job's.
    assert list((out / "_mlkube/progress").iterdir()) == []
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
    # ...and says how many good parts it set aside (the operator's PartsInvalidated Event).
    assert other["invalidated"] == other["remaining"] and summary["invalidated"] == 0
    stored = json.loads((out / "_mlkube/work/resume-2.json").read_text())
    assert stored["invalidated"] == other["invalidated"]


def test_killed_pod_rerun_redoes_only_unfinished_mini_batches(tmp_path: Path) -> None:
    """The whole pod (scorer and workers) killed mid-run, as on node loss: the next attempt of
    the index reuses the committed parts and redoes the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    write_inputs(tmp_path / "in", "csv", (3, 4, 5, 6))
    model = tmp_path / "script"
    model.mkdir()
    (model / "hang").write_text("")
    (model / "score.py").write_text(
        "import os, time\n"
        "HANG = os.path.join(os.environ['AZUREML_MODEL_DIR'], 'hang')\n"
        "def run(mini_batch):\n"
        "    if os.path.exists(HANG) and not mini_batch[0].endswith(('00.csv', '01.csv')):\n"
        "        time.sleep(3600)\n"
        "    return [os.path.basename(p) for p in mini_batch]\n"
    )
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}",
                 "--mini-batch-size", "1").code == 0  # fmt: skip
    args = ["score", "--output", f"file://{out}", "--model", str(model), "--entrypoint",
            "score.py", "--timeout", "3600"]  # fmt: skip
    pod = subprocess.Popen(
        [sys.executable, "-m", "mlkube_serving", "batch", "--termination-log", "", *args],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "_mlkube/parts").glob("*.json"))) < 2:
            assert time.monotonic() < deadline and pod.poll() is None
            time.sleep(0.1)
    finally:
        os.killpg(pod.pid, signal.SIGKILL)  # the container dies with every process in it
        pod.wait()
    (model / "hang").unlink()
    rerun = batch(*args)  # the next attempt of the index, same arguments
    assert rerun.code == 0, rerun.stderr
    progress = json.loads((out / "_mlkube/progress/index-00000.json").read_text())
    assert progress["miniBatches"]["reused"] == 2
    assert progress["items"] == {"total": 4, "succeeded": 4, "failed": 0}
    # No --entrypoint: score.py next to the model is still run with Azure's batch contract.
    fresh = tmp_path / "out2"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{fresh}",
                 "--mini-batch-size", "2").code == 0  # fmt: skip
    assert _run(fresh, model)["items"]["succeeded"] == 4
    assert batch("merge", "--output", f"file://{fresh}").code == 0
    assert (fresh / "predictions.csv").read_text().split()[1:] == [
        "part-00.csv", "part-01.csv", "part-02.csv", "part-03.csv",
    ]  # fmt: skip
