"""Per-row errors in rows mode name the right line (blank lines, CRLF, several ranges) and keep
every other row, in order; a quoted CSV header does not make a file unsplittable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from mlkube_serving.batch.listing import input_store, plan_input
from mlkube_serving.batch.rows import numeric_rows, read_rows_attributed

LINES = ["a,b", "1,2", "", "3,x", "4", "5,6\r", "7,8"]


def _read_all(folder: Path, size: str) -> tuple[pd.DataFrame, list[tuple[dict[str, object], str]]]:
    plan = plan_input(f"file://{folder}", size, "auto")
    store = input_store(plan.input_uri)
    frames, failed = [], []
    for batch in plan.mini_batches:
        rows = read_rows_attributed(store, batch, plan.input_format)
        frame, bad, errors = numeric_rows(rows.frame, list(rows.frame.columns))
        failed += rows.failed + list(zip(rows.items(bad), errors, strict=True))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), failed


def test_csv_bad_lines_are_named_by_offset_and_the_rest_kept(tmp_path: Path) -> None:
    body = "\n".join(LINES) + "\n"
    (tmp_path / "in.csv").write_text(body)
    for size in ("1rows", "100rows"):  # many ranges, one range
        frame, failed = _read_all(tmp_path, size)
        assert frame["a"].tolist() == [1, 5, 7] and frame["b"].tolist() == [2, 6, 8]
        by_line = {str(item["line"]): (item, error) for item, error in failed}
        assert set(by_line) == {"3,x", "4"}, failed
        assert by_line["3,x"][0]["offset"] == body.index("3,x")
        assert by_line["3,x"][1] == "column 'b': 'x' is not a number"
        assert by_line["4"][0]["offset"] == body.index("4\n")
        assert by_line["4"][1] == "expected 2 fields, got 1"


def test_jsonl_bad_line_is_one_item(tmp_path: Path) -> None:
    lines = [json.dumps({"a": i, "b": i * 2}) for i in range(5)]
    lines[2] = '{"a": 2, "b":'
    lines.insert(4, "")
    body = "\n".join(lines) + "\n"
    (tmp_path / "in.jsonl").write_text(body)
    frame, failed = _read_all(tmp_path, "100rows")
    assert frame["a"].tolist() == [0, 1, 3, 4]
    assert len(failed) == 1
    item, error = failed[0]
    assert item == {"path": "in.jsonl", "offset": body.index(lines[2]), "line": lines[2]}
    assert error.startswith("JSONDecodeError")


def test_quoted_csv_header_still_splits(tmp_path: Path) -> None:
    table = pa.table({"a": list(range(2000)), "b": list(range(2000))})
    pacsv.write_csv(table, tmp_path / "in.csv")  # pyarrow quotes the column names
    assert (tmp_path / "in.csv").read_text().startswith('"a","b"')
    plan = plan_input(f"file://{tmp_path}", "100rows", "auto")
    assert len(plan.mini_batches) > 10
    frame, failed = _read_all(tmp_path, "100rows")
    assert failed == [] and frame["a"].tolist() == list(range(2000))
