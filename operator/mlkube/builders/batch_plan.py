"""The deterministic batch planner: an input listing -> mini-batches -> indexes of an Indexed Job.

Pure (no I/O, no clock): the plan pod lists the input once and calls `build_plan`; the same
listing in any order gives a byte-identical `serialize_plan`, whose sha256 is the digest the
operator records and the workers check. Files mode is Azure ML's (N files per mini-batch);
rows mode packs Parquet row groups, or line-aligned byte ranges of CSV/JSONL, into
mini-batches of about N rows (docs/batch-endpoints.md §2). Shard assignment is a formula of
(mini-batches, indexes), so nothing per index needs to be stored; resume (`resume_work`) is a
set difference over the plan's mini-batch ids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlkube.api.batch_size import MiniBatchSize

PLAN_VERSION = 1
MAX_UNITS = 10_000_000
MAX_MINI_BATCHES = 1_000_000
MAX_INDEXES = 1000
SHARDS_PER_INSTANCE = 4

FileFormat = Literal["files", "csv", "jsonl", "parquet"]
_EXTENSIONS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class PlanError(ValueError):
    """The input cannot be planned as asked (the job fails with this message)."""


@dataclass(frozen=True)
class InputFile:
    """One file of the listing, with what the plan pod learned about it."""

    path: str
    """Path relative to the input uri ('/'-separated)."""
    size: int
    """Bytes."""
    row_groups: tuple[int, ...] = ()
    """Parquet: rows of each row group, from the footer."""
    bytes_per_row: float | None = None
    """CSV/JSONL in rows mode: average line width of the file's first 64 KiB."""
    splittable: bool = True
    """CSV: False when the sample holds a quote (a quoted newline could straddle a boundary)."""


@dataclass(frozen=True)
class Unit:
    """The smallest piece a mini-batch holds: a whole file, a row group, or a byte range."""

    path: str
    start: int
    end: int
    rows: int | None = None  # None in files mode; exact for row groups, estimated for ranges
    row_group: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "start": self.start, "end": self.end}
        if self.rows is not None:
            out["rows"] = self.rows
        if self.row_group is not None:
            out["rowGroup"] = self.row_group
        return out


@dataclass(frozen=True)
class MiniBatch:
    id: int
    units: tuple[Unit, ...]

    @property
    def items(self) -> int:
        """Files in files mode, rows (exact or estimated) in rows mode."""
        return sum(1 if u.rows is None else u.rows for u in self.units)


@dataclass(frozen=True)
class Plan:
    input_uri: str  # part of the digest: a plan (and its parts) belongs to one input
    mini_batch_size: MiniBatchSize
    input_format: str
    mini_batches: tuple[MiniBatch, ...]
    items_estimated: bool

    @property
    def items(self) -> int:
        return sum(mb.items for mb in self.mini_batches)


def resolve_format(path: str, declared: str) -> FileFormat:
    """The declared format, or (auto) the one the file's extension names; `files` otherwise."""
    if declared != "auto":
        if declared not in ("files", "csv", "jsonl", "parquet"):
            raise PlanError(f"unknown input format {declared!r}")
        return declared  # type: ignore[return-value]  # checked just above
    name = path.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:], "files") if dot > 0 else "files"


def is_data_file(path: str) -> bool:
    """Not data when a segment starts with `_` or `.` (`_SUCCESS`, `_mlkube/`), as in Spark."""
    return bool(path) and not any(part.startswith(("_", ".")) for part in path.split("/"))


def build_plan(
    listing: Iterable[InputFile],
    size: MiniBatchSize,
    input_format: str = "auto",
    *,
    input_uri: str = "",
) -> Plan:
    """Mini-batches of the listing, in path order (UTF-8 bytes), independent of listing order."""
    files = sorted((f for f in listing if is_data_file(f.path)), key=lambda f: f.path.encode())
    for before, after in itertools.pairwise(files):
        if before.path == after.path:
            raise PlanError(f"the listing names {before.path!r} twice")
    if size.unit == "files":
        units = [Unit(f.path, 0, f.size) for f in files]
        _check_units(units)
        batches = [units[i : i + size.count] for i in range(0, len(units), size.count)]
        estimated = False
    else:
        units = [
            u for f in files for u in _row_units(f, resolve_format(f.path, input_format), size)
        ]
        _check_units(units)
        batches = _pack_rows(units, size.count)
        estimated = any(u.row_group is None for u in units)
    if len(batches) > MAX_MINI_BATCHES:
        raise PlanError(
            f"{len(batches)} mini-batches exceed {MAX_MINI_BATCHES}: raise miniBatchSize"
        )
    mini_batches = tuple(MiniBatch(i, tuple(b)) for i, b in enumerate(batches))
    return Plan(input_uri, size, input_format, mini_batches, estimated)


def _check_units(units: Sequence[Unit]) -> None:
    if len(units) > MAX_UNITS:
        raise PlanError(f"{len(units)} files, row groups or ranges exceed {MAX_UNITS}")


def _row_units(file: InputFile, fmt: FileFormat, size: MiniBatchSize) -> list[Unit]:
    if fmt == "files":
        raise PlanError(f"{file.path}: miniBatchSize in rows needs csv, parquet or jsonl input")
    if fmt == "parquet":
        return [
            Unit(file.path, 0, file.size, rows=rows, row_group=group)
            for group, rows in enumerate(file.row_groups)
            if rows > 0
        ]
    if file.size == 0:
        return []
    width = file.bytes_per_row
    if width is None or not width > 0:
        raise PlanError(f"{file.path}: no row width sample to split {fmt} by rows")
    splittable = file.splittable or fmt == "jsonl"  # JSON escapes newlines: always line-safe
    ranges = max(1, math.ceil(file.size / (size.count * width))) if splittable else 1
    bounds = [file.size * k // ranges for k in range(ranges + 1)]
    # Estimated rows telescope: the ranges of a file add up to round(size / width) exactly.
    return [
        Unit(file.path, start, end, rows=round(end / width) - round(start / width))
        for start, end in itertools.pairwise(bounds)
    ]


def _pack_rows(units: Sequence[Unit], limit: int) -> list[list[Unit]]:
    """Greedy, in order: close a mini-batch before the unit that would take it past `limit`."""
    batches: list[list[Unit]] = []
    current: list[Unit] = []
    rows = 0
    for unit in units:
        unit_rows = unit.rows or 0
        if current and rows + unit_rows > limit:
            batches.append(current)
            current, rows = [], 0
        current.append(unit)
        rows += unit_rows
    if current:
        batches.append(current)
    return batches


def plan_to_json(plan: Plan) -> dict[str, Any]:
    size = plan.mini_batch_size
    return {
        "version": PLAN_VERSION,
        "miniBatchSize": {"count": size.count, "unit": size.unit},
        "inputFormat": plan.input_format,
        "inputUri": plan.input_uri,
        "items": plan.items,
        "itemsEstimated": plan.items_estimated,
        "miniBatches": [
            {"id": mb.id, "items": mb.items, "units": [u.to_json() for u in mb.units]}
            for mb in plan.mini_batches
        ],
    }


def serialize_plan(plan: Plan) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8): same plan, same bytes, same digest."""
    text = json.dumps(plan_to_json(plan), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def plan_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_plan(data: bytes) -> Plan:
    """The plan a serialized plan describes; raises PlanError on anything else."""
    try:
        raw = json.loads(data)
        if raw.get("version") != PLAN_VERSION:
            raise PlanError(f"plan version {raw.get('version')!r} is not {PLAN_VERSION}")
        size = MiniBatchSize(int(raw["miniBatchSize"]["count"]), raw["miniBatchSize"]["unit"])
        batches = tuple(
            MiniBatch(
                int(mb["id"]),
                tuple(
                    Unit(u["path"], u["start"], u["end"], u.get("rows"), u.get("rowGroup"))
                    for u in mb["units"]
                ),
            )
            for mb in raw["miniBatches"]
        )
        plan = Plan(
            str(raw["inputUri"]),
            size,
            str(raw["inputFormat"]),
            batches,
            bool(raw["itemsEstimated"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise PlanError(f"unreadable plan: {err}") from err
    if [mb.id for mb in batches] != list(range(len(batches))):
        raise PlanError("plan mini-batch ids are not 0..n-1 in order")
    return plan


def index_count(mini_batches: int, instance_count: int) -> int:
    """Indexes (completions) of the Indexed Job: a few shards per instance, capped."""
    return min(mini_batches, SHARDS_PER_INSTANCE * max(1, instance_count), MAX_INDEXES)


def shard(index: int, total: int, indexes: int) -> range:
    """Positions [start, end) of `total` work items owned by `index`: contiguous, sizes ±1."""
    if not 0 <= index < indexes:
        raise PlanError(f"index {index} is outside 0..{indexes - 1}")
    quotient, remainder = divmod(total, indexes)
    start = index * quotient + min(index, remainder)
    return range(start, start + quotient + (1 if index < remainder else 0))


def index_of(position: int, total: int, indexes: int) -> int:
    """The index whose shard holds `position` (what `batch jobs logs --mini-batch` needs)."""
    if not 0 <= position < total:
        raise PlanError(f"position {position} is outside 0..{total - 1}")
    quotient, remainder = divmod(total, indexes)
    big = remainder * (quotient + 1)  # positions held by the first `remainder` larger shards
    if position < big:
        return position // (quotient + 1)
    return remainder + (position - big) // quotient
