"""Read one mini-batch of a plan: whole files, Parquet row groups or line-aligned byte ranges.

Rows mode gives one DataFrame (units concatenated in plan order, so output order is input
order); a unit that cannot be read fails the mini-batch (its rows cannot be told apart). Files
mode keeps files apart: each file is an item, and a file that cannot be read is one failed
item with its error while the others are scored (Azure ML's file semantics). Remote files in
files mode are downloaded next to the worker for scoring scripts, which expect local paths.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from mlkube.builders.batch_plan import FileFormat, MiniBatch, Unit, resolve_format
from mlkube_serving.batch.lines import header_line, read_owned
from mlkube_serving.batch.store import Store


class UnitError(ValueError):
    """A unit (file, row group, byte range) could not be read or parsed."""


@dataclass
class FileItems:
    """Files mode: the readable files (paths or frames) and the failed ones with their error."""

    names: list[str] = field(default_factory=list)
    frames: list[pd.DataFrame] = field(default_factory=list)
    local_paths: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def read_table(store: Store, unit: Unit, fmt: FileFormat) -> pd.DataFrame:
    """The rows of one unit as a DataFrame; UnitError with the reason when it cannot."""
    try:
        return _read(store, unit, fmt)
    except UnitError:
        raise
    except Exception as exc:  # parsers raise many types; the item keeps the message
        raise UnitError(f"{unit.path}: {type(exc).__name__}: {exc}") from exc


def _read(store: Store, unit: Unit, fmt: FileFormat) -> pd.DataFrame:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with store.open_read(unit.path) as handle:
            parquet = pq.ParquetFile(handle)
            if unit.row_group is None:
                return parquet.read().to_pandas()
            return parquet.read_row_group(unit.row_group).to_pandas()
    if fmt not in ("csv", "jsonl"):
        raise UnitError(f"{unit.path}: format {fmt!r} is not tabular")
    with store.open_read(unit.path) as handle:
        whole = unit.rows is None  # files mode: the whole file
        body = handle.read() if whole else read_owned(handle, unit.start, unit.end)
        if fmt == "jsonl":
            return _parse_jsonl(body)
        header = header_line(handle)
    if whole or unit.start == 0:
        body = body[len(header) :]  # the header line belongs to the range at 0
    if not body.strip():
        return _parse_csv(header)
    return _parse_csv(header + body)


def _parse_csv(data: bytes) -> pd.DataFrame:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(use_threads=False))
    return table.to_pandas()


def _parse_jsonl(data: bytes) -> pd.DataFrame:
    if not data.strip():
        return pd.DataFrame()
    import pyarrow.json as pajson

    table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(use_threads=False))
    return table.to_pandas()


def read_rows(store: Store, batch: MiniBatch, declared: str) -> pd.DataFrame:
    """Rows mode: every unit's rows, in plan order."""
    frames = [read_table(store, u, resolve_format(u.path, declared)) for u in batch.units]
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_files(
    store: Store, batch: MiniBatch, declared: str, *, tabular: bool, scratch: str
) -> FileItems:
    """Files mode: frames (model runtimes) or local paths (scoring scripts), failures apart."""
    out = FileItems()
    for unit in batch.units:
        try:
            if tabular:
                fmt = resolve_format(unit.path, declared)
                out.frames.append(read_table(store, unit, fmt))
            else:
                out.local_paths.append(_local_path(store, unit.path, scratch))
            out.names.append(unit.path)
        except Exception as exc:  # one unreadable file is one failed item, not the mini-batch
            out.failed.append((unit.path, f"{type(exc).__name__}: {exc}"))
    return out


def _local_path(store: Store, relpath: str, scratch: str) -> str:
    if store.location.is_local:
        path = store.path(relpath)
        if not os.path.isfile(path):
            raise UnitError(f"{relpath}: no such file")
        return path
    target = os.path.join(scratch, relpath.replace("/", "__"))
    store.get_file(relpath, target)
    return target


def chunks(frame: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    """Slices of at most `rows` rows: large enough to amortize per-call cost, bounded memory."""
    for start in range(0, len(frame), rows):
        yield frame.iloc[start : start + rows]
