"""List a BatchJob's input once and build its plan (the plan pod's job).

What the pure planner needs per file is learned here: sizes from the listing, Parquet row
group sizes from the footers only, and for CSV/JSONL a 64 KiB sample giving the average row
width and whether a CSV quotes (a quoted newline must never fall on a range boundary).
"""

from __future__ import annotations

import posixpath

from mlkube.api.batch_size import parse_mini_batch_size
from mlkube.builders.batch_plan import InputFile, Plan, build_plan, is_data_file, resolve_format
from mlkube_serving.batch.store import Store

SAMPLE = 64 * 1024


def input_root(uri: str) -> tuple[Store, list[str]]:
    """The folder to read from and the files to plan: a file input is its parent + its name."""
    store = Store.open(uri)
    if store.is_file():
        parent, name = posixpath.split(uri.rstrip("/"))
        return Store.open(parent), [name]
    return store, [p for p in store.list_files() if is_data_file(p)]


def input_store(uri: str) -> Store:
    """The folder a plan's unit paths are relative to (a file input's parent)."""
    store = Store.open(uri)
    return Store.open(posixpath.split(uri.rstrip("/"))[0]) if store.is_file() else store


def describe(store: Store, path: str, fmt: str, rows_mode: bool) -> InputFile:
    size = store.size(path)
    resolved = resolve_format(path, fmt)
    if not rows_mode or resolved == "files":
        return InputFile(path, size)
    if resolved == "parquet":
        import pyarrow.parquet as pq

        with store.open_read(path) as handle:
            meta = pq.ParquetFile(handle).metadata
            groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
        return InputFile(path, size, row_groups=groups)
    with store.open_read(path) as handle:
        sample = handle.read(SAMPLE)
    lines = sample.count(b"\n") or 1
    width = (len(sample) / lines) if sample else 1.0
    # The header line is read whole by every range, so only quotes after it can put a quoted
    # newline on a boundary (writers such as pyarrow's quote every column name).
    rows = sample[sample.find(b"\n") + 1 :] if resolved == "csv" else sample
    splittable = resolved == "jsonl" or b'"' not in rows
    return InputFile(path, size, bytes_per_row=max(width, 1.0), splittable=splittable)


def plan_input(uri: str, mini_batch_size: int | str, input_format: str = "auto") -> Plan:
    size = parse_mini_batch_size(mini_batch_size)
    store, paths = input_root(uri)
    listing = [describe(store, p, input_format, size.unit == "rows") for p in paths]
    return build_plan(listing, size, input_format, input_uri=uri)
