"""Reading a plan's mini-batches gives back every input row exactly once, in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlkube_serving.batch.listing import input_store, plan_input
from mlkube_serving.batch.reader import read_files, read_rows


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])


def _write(folder: Path, fmt: str) -> pd.DataFrame:
    frames = [_frame(n, i) for i, n in enumerate((1000, 7, 333))]
    for i, frame in enumerate(frames):
        path = folder / f"part-{i}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "jsonl":
            frame.to_json(path, orient="records", lines=True, double_precision=15)
        else:
            pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=100)
    (folder / "_SUCCESS").write_text("")
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_rows_mode_reads_every_row_once_in_order(tmp_path: Path, fmt: str) -> None:
    whole = _write(tmp_path, fmt)
    plan = plan_input(f"file://{tmp_path}", "150rows", "auto")
    assert len(plan.mini_batches) > 3
    store = input_store(plan.input_uri)
    got = pd.concat([read_rows(store, mb, plan.input_format) for mb in plan.mini_batches])
    np.testing.assert_allclose(got.to_numpy(), whole.to_numpy(), rtol=1e-9)


def test_single_file_input(tmp_path: Path) -> None:
    whole = _write(tmp_path, "csv")
    uri = f"file://{tmp_path}/part-0.csv"
    plan = plan_input(uri, "64rows", "csv")
    store = input_store(uri)
    got = pd.concat([read_rows(store, mb, "csv") for mb in plan.mini_batches])
    np.testing.assert_allclose(got.to_numpy(), whole.iloc[:1000].to_numpy(), rtol=1e-9)


def test_files_mode_keeps_a_bad_file_apart(tmp_path: Path) -> None:
    _write(tmp_path, "parquet")
    (tmp_path / "part-9.parquet").write_bytes(b"not parquet at all")
    plan = plan_input(f"file://{tmp_path}", 10, "auto")
    items = read_files(
        input_store(plan.input_uri), plan.mini_batches[0], "auto", tabular=True, scratch=""
    )
    assert items.names == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    assert [name for name, _ in items.failed] == ["part-9.parquet"]
    assert "Parquet" in items.failed[0][1] or "parquet" in items.failed[0][1]
