"""The batch scorer when things go wrong, with real processes and files: a poisoned file is a
failed item with its error, the error threshold stops the index with exit 42 and a reason, a
hanging or dying `run()` is retried in a fresh worker, a short result fails the mini-batch."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
from tests.process.batch.conftest import batch, write_inputs


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _poisoned(tmp_path: Path) -> tuple[str, str]:
    inputs = tmp_path / "in"
    write_inputs(inputs, "parquet", (50, 60, 70))
    (inputs / "part-01b.parquet").write_bytes(b"PAR1 this is not a parquet file")
    out = f"file://{tmp_path}/out"
    assert batch("plan", "--input", f"file://{inputs}", "--output", out,
                 "--mini-batch-size", "2").code == 0  # fmt: skip
    return out, str(tmp_path / "out")


def test_poisoned_file_is_a_failed_item_with_its_error(tmp_path: Path, model: Any) -> None:
    out, folder = _poisoned(tmp_path)
    scored = batch("score", "--output", out, "--model", str(model[0]))
    assert scored.code == 0, scored.stderr
    progress = _json(Path(folder, "_mlkube/progress/index-00000.json"))
    assert progress["items"] == {"total": 4, "succeeded": 3, "failed": 1}
    dead = [json.loads(line) for line in Path(folder, "_mlkube/deadletter").glob("*.jsonl")
            for line in line_iter(line)]  # fmt: skip
    assert [d["item"] for d in dead] == ["part-01b.parquet"]
    assert "Parquet" in dead[0]["error"] or "parquet" in dead[0]["error"]
    merged = batch("merge", "--output", out)
    assert merged.code == 0, merged.stderr
    assert merged.summary()["items"] == {"total": 4, "succeeded": 3, "failed": 1}
    assert merged.summary()["rows"] == 180  # the three good files, every row


def line_iter(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def test_error_threshold_exceeded_exits_42_with_reason(tmp_path: Path, model: Any) -> None:
    out, folder = _poisoned(tmp_path)
    scored = batch("score", "--output", out, "--model", str(model[0]), "--error-threshold", "0")
    assert scored.code == 42
    progress = _json(Path(folder, "_mlkube/progress/index-00000.json"))
    assert progress["reason"].startswith("ErrorThresholdExceeded: 1 failed items")
    assert progress["done"] is True


def _script(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "script"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(body))
    return folder


FLAKY = """
    import os, sys, time
    from pathlib import Path

    MARK = Path(os.environ["AZUREML_MODEL_DIR"]) / "first-attempt-seen"

    def init():
        pass

    def run(mini_batch):
        if not MARK.exists():
            MARK.write_text("x")
            {action}
        return [os.path.basename(p) for p in mini_batch]
"""


def _scripted_run(tmp_path: Path, action: str, *extra: str) -> tuple[int, dict[str, Any], Path]:
    write_inputs(tmp_path / "in", "csv", (5, 6, 7))
    model = _script(tmp_path, FLAKY.format(action=action))
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}",
                 "--mini-batch-size", "3").code == 0  # fmt: skip
    scored = batch("score", "--output", f"file://{out}", "--model", str(model),
                   "--entrypoint", "score.py", *extra)  # fmt: skip
    return scored.code, _json(out / "_mlkube/progress/index-00000.json"), out


def test_hanging_run_times_out_and_is_retried(tmp_path: Path) -> None:
    code, progress, out = _scripted_run(tmp_path, "time.sleep(3600)", "--timeout", "3")
    assert code == 0
    assert progress["miniBatches"]["retried"] == 1
    assert progress["items"] == {"total": 3, "succeeded": 3, "failed": 0}
    assert "timed out after 3 s" in progress["lastErrors"][0]["message"]
    assert batch("merge", "--output", f"file://{out}").code == 0
    assert (out / "predictions.csv").read_text().split() == [
        "result", "part-00.csv", "part-01.csv", "part-02.csv",
    ]  # fmt: skip


def test_killed_worker_is_replaced_and_its_mini_batch_redone(tmp_path: Path) -> None:
    code, progress, _ = _scripted_run(tmp_path, "os._exit(9)")
    assert code == 0
    assert progress["miniBatches"]["retried"] == 1
    assert "worker process exited (code 9)" in progress["lastErrors"][0]["message"]
    assert progress["items"]["succeeded"] == 3


def test_fewer_results_fail_the_mini_batch_after_retries(tmp_path: Path) -> None:
    code, progress, out = _scripted_run(tmp_path, "return mini_batch[:-1]", "--max-retries", "0")
    assert code == 0  # errorThreshold -1 tolerates it; the failure is recorded, not hidden
    assert progress["miniBatches"] == {
        "total": 1, "succeeded": 0, "failed": 1, "retried": 0, "reused": 0,
    }  # fmt: skip
    assert progress["items"] == {"total": 3, "succeeded": 0, "failed": 3}
    assert "returned 2 results for 3 inputs" in progress["lastErrors"][-1]["message"]
    dead = line_iter(out / "_mlkube/deadletter/mb-000000000.jsonl")
    assert [json.loads(line)["item"] for line in dead] == [
        "part-00.csv", "part-01.csv", "part-02.csv",
    ]  # fmt: skip


def test_unparseable_jsonl_line_is_one_failed_item(tmp_path: Path, model: Any) -> None:
    inputs = tmp_path / "in"
    write_inputs(inputs, "jsonl", (100, 100))
    lines = (inputs / "part-01.jsonl").read_text().splitlines()
    offset = sum(len(line) + 1 for line in lines[:50])
    lines[50] = '{"f0": 1.0, "f1": '  # a truncated record
    (inputs / "part-01.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{inputs}", "--output", f"file://{out}",
                 "--mini-batch-size", "25rows").code == 0  # fmt: skip
    scored = batch("score", "--output", f"file://{out}", "--model", str(model[0]))
    assert scored.code == 0, scored.stderr
    progress = _json(out / "_mlkube/progress/index-00000.json")
    assert progress["miniBatches"]["failed"] == 0 and progress["miniBatches"]["retried"] == 0
    assert progress["items"]["failed"] == 1
    dead = [
        json.loads(x) for p in (out / "_mlkube/deadletter").glob("*.jsonl") for x in line_iter(p)
    ]
    assert len(dead) == 1
    assert dead[0]["item"] == {"path": "part-01.jsonl", "offset": offset, "line": lines[50]}
    assert dead[0]["error"].startswith("JSONDecodeError")
    merged = batch("merge", "--output", f"file://{out}").summary()
    assert merged["items"] == {"total": 200, "succeeded": 199, "failed": 1}
    assert merged["rows"] == 199


def test_poisoned_csv_rows_are_failed_items_and_the_rest_is_scored(
    tmp_path: Path, model: Any
) -> None:
    """A non-numeric value and a line with a missing field: two failed items, each with its
    file, byte offset, line and error; every other row of their mini-batches is predicted."""
    inputs = tmp_path / "in"
    whole = write_inputs(inputs, "csv", (300,))
    path = inputs / "part-00.csv"
    lines = path.read_text().splitlines()
    fields = lines[101].split(",")
    lines[101] = ",".join([fields[0], "not-a-number", *fields[2:]])  # data row 100
    lines[202] = ",".join(lines[202].split(",")[:-1])  # data row 201: one field short
    path.write_text("\n".join(lines) + "\n")
    offsets = {i: sum(len(x) + 1 for x in lines[:i]) for i in (101, 202)}
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{inputs}", "--output", f"file://{out}",
                 "--mini-batch-size", "40rows").code == 0  # fmt: skip
    scored = batch("score", "--output", f"file://{out}", "--model", str(model[0]),
                   "--concurrency", "2")  # fmt: skip
    assert scored.code == 0, scored.stderr
    dead = sorted(
        (json.loads(x) for p in (out / "_mlkube/deadletter").glob("*.jsonl") for x in line_iter(p)),
        key=lambda d: d["item"]["offset"],
    )
    assert [d["item"] for d in dead] == [
        {"path": "part-00.csv", "offset": offsets[101], "line": lines[101]},
        {"path": "part-00.csv", "offset": offsets[202], "line": lines[202]},
    ]
    assert "'f1': 'not-a-number' is not a number" in dead[0]["error"]
    assert dead[1]["error"] == "expected 4 fields, got 3"
    merged = batch("merge", "--output", f"file://{out}").summary()
    assert merged["items"] == {"total": 300, "succeeded": 298, "failed": 2}
    assert merged["miniBatches"]["failed"] == 0
    predictions = pd.read_csv(out / "predictions.csv")["prediction"].to_numpy()
    kept = whole.drop(index=[100, 201]).reset_index(drop=True)
    assert (predictions == model[1].predict(kept)).all()


def test_hanging_init_is_exit_43(tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "csv", (3,))
    model = _script(
        tmp_path, "import time\ndef init():\n    time.sleep(3600)\ndef run(b):\n    return b\n"
    )
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}").code == 0
    scored = batch("score", "--output", f"file://{out}", "--model", str(model),
                   "--entrypoint", "score.py", "--init-timeout", "3")  # fmt: skip
    assert scored.code == 43
    assert "not ready after 3 s" in _json(out / "_mlkube/progress/index-00000.json")["reason"]


def test_entrypoint_functions_with_other_names(tmp_path: Path) -> None:
    """BatchEntrypoint initFunction/runFunction: the scorer calls the named functions, so a
    script without init()/run() scores; a misspelt name fails clearly (exit 43)."""
    write_inputs(tmp_path / "in", "csv", (4, 5))
    model = _script(
        tmp_path,
        """
        import os
        STATE = {}

        def setup():
            STATE["ready"] = "yes"

        def score_batch(mini_batch):
            return [os.path.basename(p) + ":" + STATE["ready"] for p in mini_batch]
        """,
    )
    out = tmp_path / "out"
    assert batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{out}").code == 0
    scored = batch("score", "--output", f"file://{out}", "--model", str(model),
                   "--entrypoint", "score.py", "--init-function", "setup",
                   "--run-function", "score_batch")  # fmt: skip
    assert scored.code == 0, scored.stderr
    assert batch("merge", "--output", f"file://{out}").code == 0
    assert (out / "predictions.csv").read_text().split() == [
        "result", "part-00.csv:yes", "part-01.csv:yes",
    ]  # fmt: skip
    again = tmp_path / "again"
    assert (
        batch("plan", "--input", f"file://{tmp_path}/in", "--output", f"file://{again}").code == 0
    )
    wrong = batch("score", "--output", f"file://{again}", "--model", str(model),
                  "--entrypoint", "score.py", "--init-function", "setup")  # fmt: skip
    assert wrong.code == 43
    reason = _json(again / "_mlkube/progress/index-00000.json")["reason"]
    assert "defines no run(mini_batch) function" in reason
