"""The `batch` command's contract with the Job: summaries in the termination message, exit 43
for an output that already holds another plan."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert dispatch(["batch", "--termination-log", "", "plan", *args]) == 0  # same plan: fine

    (tmp_path / "in/b.csv").write_text("x\n3\n")  # the input changed since it was planned
    assert dispatch(["batch", "--termination-log", str(log), "plan", *args]) == 43
    assert "already holds another plan" in json.loads(log.read_text())["error"]
