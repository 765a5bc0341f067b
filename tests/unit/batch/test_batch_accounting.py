"""Item accounting, the error threshold, part records and their verification."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlkube_serving.batch.accounting import MAX_ERRORS, Tally
from mlkube_serving.batch.output import (
    PartRecord,
    encode_frame,
    part_name,
    record_name,
    verified_record,
    write_part,
)
from mlkube_serving.batch.scoring import MiniBatchFailed, to_frame
from mlkube_serving.batch.store import Store


def test_threshold_counts_items_and_minus_one_tolerates_all() -> None:
    tally = Tally(0, 1, "sha256:p", 3)
    tally.add({"items": 10, "succeeded": 9, "failed": 1})
    assert not tally.threshold_exceeded(1) and tally.threshold_exceeded(0)
    tally.add({"items": 5, "succeeded": 0, "failed": 5})
    assert tally.threshold_exceeded(5) and not tally.threshold_exceeded(-1)
    body = tally.progress(done=False)
    assert body["items"] == {"total": 15, "succeeded": 9, "failed": 6}
    assert body["miniBatches"]["succeeded"] == 1 and body["miniBatches"]["failed"] == 1


def test_last_errors_are_bounded() -> None:
    tally = Tally(0, 1, "sha256:p", 3)
    for i in range(10):
        tally.error(i, "x" * 5000, 0)
    assert [e["miniBatch"] for e in tally.last_errors] == list(range(10 - MAX_ERRORS, 10))
    assert all(len(e["message"]) == 1024 for e in tally.last_errors)


def _record(fmt: str = "csv") -> PartRecord:
    return PartRecord("sha256:p", "sha256:m", "sha256:s", 7, fmt, 2, 2, 0, 0, 0, "")


def test_record_commits_the_part_and_tampering_unverifies_it(tmp_path: Path) -> None:
    store = Store.open(f"file://{tmp_path}")
    written = write_part(store, _record(), pd.DataFrame({"prediction": [1, 0]}), [])
    assert verified_record(store, 7, "csv") == written
    assert verified_record(store, 7, "jsonl") is None  # another output format is another part
    (tmp_path / part_name(7, "csv")).write_text("prediction\n1\n1\n")
    assert verified_record(store, 7, "csv") is None
    (tmp_path / record_name(7)).unlink()
    assert verified_record(store, 7, "csv") is None
    assert not [p for p in tmp_path.rglob(".*tmp-*")]  # no temporary file left behind


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_empty_part_has_no_header(fmt: str) -> None:
    assert encode_frame(pd.DataFrame(), fmt) == b""


def test_run_results_become_rows() -> None:
    assert list(to_frame(["a", "b"])["result"]) == ["a", "b"]
    assert list(to_frame(pd.DataFrame({"x": [1]})).columns) == ["x"]
    with pytest.raises(MiniBatchFailed, match="not a list or DataFrame"):
        to_frame(42)
