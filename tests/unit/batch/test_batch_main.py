"""The `batch` command's contract with the Job: summaries in the termination message, exit 43
for an output that already holds another plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkube_serving.__main__ import dispatch


def test_plan_summary_goes_to_the_termination_message(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.csv").write_text("x\n1\n2\n")
    log = tmp_path / "termination-log"
    log.write_text("")
    args = ["--input", f"file://{tmp_path}/in", "--output", f"file://{tmp_path}/out"]
    code = dispatch(["batch", "--termination-log", str(log), "plan", *args])
    assert code == 0
    summary = json.loads(log.read_text())
    assert summary["miniBatches"] == 1 and summary["items"] == 1
    # The same summary in the output, for an operator that finds the pod gone.
    assert json.loads((tmp_path / "out/_mlkube/plan-summary.json").read_text()) == summary
    assert dispatch(["batch", "--termination-log", "", "plan", *args]) == 0  # same plan: fine

    (tmp_path / "in/b.csv").write_text("x\n3\n")  # the input changed since it was planned
    assert dispatch(["batch", "--termination-log", str(log), "plan", *args]) == 43
    assert "already holds another plan" in json.loads(log.read_text())["error"]


def test_termination_log_named_by_env_is_written_even_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dev pod executor names a file per container in MLKUBE_TERMINATION_LOG."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.csv").write_text("x\n1\n")
    log = tmp_path / "pod" / "termination-log"
    log.parent.mkdir()
    monkeypatch.setenv("MLKUBE_TERMINATION_LOG", str(log))
    args = ["--input", f"file://{tmp_path}/in", "--output", f"file://{tmp_path}/out"]
    assert dispatch(["batch", "plan", *args]) == 0
    assert json.loads(log.read_text())["miniBatches"] == 1


def test_a_long_summary_is_shortened_to_valid_json_within_4_kib() -> None:
    from mlkube_serving.batch.main import MAX_SUMMARY, _fit

    errors = [{"miniBatch": i, "message": "é" * 1024, "attempt": 1} for i in range(3)]
    body = {"index": 0, "done": True, "reason": "ErrorThresholdExceeded: 3", "lastErrors": errors}
    text = _fit(body)
    assert len(text.encode()) <= MAX_SUMMARY
    fitted = json.loads(text)
    assert fitted["reason"] == body["reason"] and fitted["lastErrors"][-1]["miniBatch"] == 2
    short = {"index": 0, "lastErrors": [{"miniBatch": 1, "message": "bad row", "attempt": 2}]}
    assert json.loads(_fit(short)) == short  # short enough: unchanged
