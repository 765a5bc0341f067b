"""Rows mode with per-row errors: a line that cannot be parsed or converted is one failed item.

Design §4: per-item errors a runtime can attribute count one item, not the mini-batch. In a
CSV range, a line with the wrong number of fields is skipped by the parser and reported; in a
JSONL range, a line that is not a JSON object is (the whole range is parsed again line by line
only when the fast parse failed); a value that is not a number in a column the model reads
(`numeric_rows`) fails its row. Each failed row is named by its file, the byte offset of its
line (`tail -c +$((offset+1)) FILE | head -1` shows it) and the line's first 200 characters;
the other rows of the mini-batch are scored. Unreadable units (I/O, a broken Parquet row
group, bytes that are not text) still fail the mini-batch: their rows cannot be told apart.
Row positions are mapped back to lines only when a row failed, so the common path pays nothing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlkube.builders.batch_plan import MiniBatch, Unit, resolve_format
from mlkube_serving.batch.lines import header_line, owned_span

if TYPE_CHECKING:
    import pandas as pd

    from mlkube_serving.batch.store import Store

Failed = tuple[dict[str, Any], str]
SHOWN = 200


@dataclass
class TextRange:
    """A CSV/JSONL range as parsed: its owned bytes, where they start, lines the parser dropped."""

    unit: Unit
    base: int  # file offset of body[0]
    body: bytes
    dropped: set[int] = field(default_factory=set)  # indexes among the non-empty lines

    def kept_lines(self) -> list[int]:
        """Offsets (in body) of the lines that became rows, in row order."""
        starts, position = [], 0
        for line in self.body.split(b"\n"):
            if line.strip(b"\r"):
                starts.append(position)
            position += len(line) + 1
        return [s for i, s in enumerate(starts) if i not in self.dropped]

    def item(self, start: int) -> dict[str, Any]:
        end = self.body.find(b"\n", start)
        text = self.body[start : end if end >= 0 else len(self.body)].rstrip(b"\r")
        shown = text[:SHOWN].decode("utf-8", "replace")
        return {"path": self.unit.path, "offset": self.base + start, "line": shown}


@dataclass
class Rows:
    """A mini-batch's rows, the rows that failed before scoring, and how to name any row."""

    frame: pd.DataFrame
    failed: list[Failed] = field(default_factory=list)
    parts: list[tuple[int, Unit, TextRange | None]] = field(default_factory=list)  # first row

    def items(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """Identities of the frame's rows at `positions` (ascending)."""
        out, cache = [], {}
        for position in positions:
            # The last unit starting at or before the row (a unit that gave no rows starts
            # where the next one does, so the last of equals is the one holding it).
            first, unit, text = [p for p in self.parts if p[0] <= position][-1]
            if text is None:
                out.append({"path": unit.path, "rowGroup": unit.row_group, "row": position - first})
                continue
            if id(text) not in cache:
                cache[id(text)] = text.kept_lines()
            out.append(text.item(cache[id(text)][position - first]))
        return out


def read_range(store: Store, unit: Unit, fmt: str) -> tuple[pd.DataFrame, TextRange, list[Failed]]:
    """A CSV/JSONL byte range: its rows, the range as parsed, and the lines that failed."""
    with store.open_read(unit.path) as handle:
        first, stop = owned_span(handle, unit.start or 0, unit.end or 0)
        handle.seek(first)
        body = handle.read(stop - first) if stop > first else b""
        header = header_line(handle) if fmt == "csv" else b""
    if fmt == "csv" and unit.start == 0:
        body, first = body[len(header) :], first + len(header)  # the header is not a row
    text = TextRange(unit, first, body)
    if fmt == "jsonl":
        frame, failed = _jsonl(text)
    else:
        frame, failed = _csv(text, header)
    return frame, text, failed


def _csv(text: TextRange, header: bytes) -> tuple[pd.DataFrame, list[Failed]]:
    import pyarrow.csv as pacsv

    bad: list[tuple[int, str]] = []

    def invalid(row: Any) -> str:  # pyarrow numbers non-empty lines from 1, the header is 1
        error = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        bad.append((row.number - 2, error))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(header + text.body if text.body.strip() else header),
        read_options=pacsv.ReadOptions(use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
    )
    if not bad:
        return table.to_pandas(), []
    text.dropped = {index for index, _ in bad}
    starts = _nonempty_starts(text.body)
    return table.to_pandas(), [(text.item(starts[index]), error) for index, error in bad]


def _jsonl(text: TextRange) -> tuple[pd.DataFrame, list[Failed]]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.json as pajson

    if not text.body.strip():
        return pd.DataFrame(), []
    try:
        options = pajson.ReadOptions(use_threads=False)
        return pajson.read_json(io.BytesIO(text.body), read_options=options).to_pandas(), []
    except pa.ArrowInvalid:
        pass  # some line is not JSON: find which, keep the others
    records, failed = [], []
    for index, start in enumerate(_nonempty_starts(text.body)):
        end = text.body.find(b"\n", start)
        line = text.body[start : end if end >= 0 else len(text.body)]
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
            records.append(record)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            text.dropped.add(index)
            failed.append((text.item(start), f"{type(exc).__name__}: {exc}"))
    return pa.Table.from_pylist(records).to_pandas(), failed


def _nonempty_starts(body: bytes) -> list[int]:
    starts, position = [], 0
    for line in body.split(b"\n"):
        if line.strip(b"\r"):
            starts.append(position)
        position += len(line) + 1
    return starts


def read_rows_attributed(store: Store, batch: MiniBatch, declared: str) -> Rows:
    """Rows mode: every unit's rows in plan order, with per-row failures of text formats."""
    import pandas as pd

    from mlkube_serving.batch.reader import UnitError, read_table

    frames, out, position = [], Rows(pd.DataFrame()), 0
    for unit in batch.units:
        fmt = resolve_format(unit.path, declared)
        if fmt in ("csv", "jsonl") and unit.rows is not None:
            try:
                frame, text, failed = read_range(store, unit, fmt)
            except Exception as exc:  # I/O or bytes no parser accepts: the unit as a whole
                raise UnitError(f"{unit.path}: {type(exc).__name__}: {exc}") from exc
            out.failed += failed
            out.parts.append((position, unit, text))
        else:
            frame = read_table(store, unit, fmt)
            out.parts.append((position, unit, None))
        if len(frame.columns):
            frames.append(frame)
            position += len(frame)
    if frames:
        out.frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return out


def numeric_rows(
    frame: pd.DataFrame, columns: Sequence[Any]
) -> tuple[pd.DataFrame, list[int], list[str]]:
    """Convert text columns the model reads to numbers; (frame, bad positions, their errors).

    A parser types a column as text when one value in it is not a number; that value's row
    fails, the column becomes numeric for the others.
    """
    import numpy as np
    import pandas as pd

    errors: dict[int, str] = {}
    converted = {}
    for name in columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype):
            continue
        numbers = pd.to_numeric(column, errors="coerce")
        wrong = np.flatnonzero(numbers.isna().to_numpy() & column.notna().to_numpy())
        for position in wrong.tolist():
            value = column.iloc[position]
            errors.setdefault(position, f"column {name!r}: {value!r} is not a number"[:SHOWN])
        converted[name] = numbers
    if not converted:
        return frame, [], []
    frame = frame.assign(**converted)
    positions = sorted(errors)
    if positions:
        frame = frame.drop(index=frame.index[positions]).reset_index(drop=True)
    return frame, positions, [errors[p] for p in positions]
