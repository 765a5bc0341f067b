"""A BatchEndpoint's `miniBatchSize` parsed: N files or Nrows. Stdlib only, on purpose.

The batch scorer's processes (plan, score parent and workers, merge) import the planner, which
needs this; importing it from `api/batch.py` pulled in pydantic and the kinds, ~0.1 s of
start-up in each of those processes. `api/batch.py` re-exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_FILES_PER_MINI_BATCH = 1_000_000
MAX_ROWS_PER_MINI_BATCH = 100_000_000
MSG_MINI_BATCH_INT = f"miniBatchSize must be between 1 and {MAX_FILES_PER_MINI_BATCH} files"
MSG_MINI_BATCH_ROWS = f"miniBatchSize must be at most {MAX_ROWS_PER_MINI_BATCH}rows"


@dataclass(frozen=True)
class MiniBatchSize:
    """A parsed miniBatchSize: how many of which unit one mini-batch holds."""

    count: int
    unit: Literal["files", "rows"]


def parse_mini_batch_size(value: int | str) -> MiniBatchSize:
    """`10` or `"10"` -> 10 files; `"10000rows"` -> 10,000 rows. Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"miniBatchSize {value!r} is not a number")
    if isinstance(value, int):
        count, unit = value, "files"
    else:
        text = value.strip()
        unit = "rows" if text.endswith("rows") else "files"
        digits = text.removesuffix("rows")
        if not digits.isdigit() or digits.startswith("0"):
            raise ValueError(f"miniBatchSize {value!r} is neither N nor Nrows (e.g. 10000rows)")
        count = int(digits)
    if unit == "files" and not 1 <= count <= MAX_FILES_PER_MINI_BATCH:
        raise ValueError(MSG_MINI_BATCH_INT)
    if unit == "rows" and count > MAX_ROWS_PER_MINI_BATCH:
        raise ValueError(MSG_MINI_BATCH_ROWS)
    return MiniBatchSize(count=count, unit="rows" if unit == "rows" else "files")
