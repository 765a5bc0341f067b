"""Which lines of a CSV/JSONL file a byte range owns (Hadoop's rule, docs/batch-endpoints.md §2).

A range `[start, end)` owns every line whose preceding newline lies inside it; the file's first
line belongs to the range starting at 0. So a reader skips past the first newline at or after
`start` (unless `start` is 0) and reads whole lines while they start at or before `end`. Every
line then belongs to exactly one range whatever the planner's row estimate was, without a
counting pass over the input.
"""

from __future__ import annotations

from typing import IO

BLOCK = 1 << 16


def _next_newline(handle: IO[bytes], position: int) -> int:
    """Index of the first b"\\n" at or after `position`, or -1 at end of file."""
    handle.seek(position)
    offset = position
    while block := handle.read(BLOCK):
        found = block.find(b"\n")
        if found >= 0:
            return offset + found
        offset += len(block)
    return -1


def owned_span(handle: IO[bytes], start: int, end: int) -> tuple[int, int]:
    """[first, stop) byte offsets of the lines the range owns (first == stop: none)."""
    if start == 0:
        first = 0
    else:
        newline = _next_newline(handle, start)
        if newline < 0 or newline >= end:
            return (0, 0)
        first = newline + 1
    # The last owned line starts at or before `end`; it runs to the first newline at/after end.
    if first > end:
        return (0, 0)
    last_newline = _next_newline(handle, max(end, first))
    if last_newline < 0:
        handle.seek(0, 2)
        return (first, handle.tell())
    return (first, last_newline + 1)


def read_owned(handle: IO[bytes], start: int, end: int) -> bytes:
    """The bytes of the lines the range `[start, end)` owns."""
    first, stop = owned_span(handle, start, end)
    if stop <= first:
        return b""
    handle.seek(first)
    return handle.read(stop - first)


def header_line(handle: IO[bytes]) -> bytes:
    """The file's first line (a CSV header), newline included."""
    newline = _next_newline(handle, 0)
    handle.seek(0)
    if newline < 0:
        return handle.read()
    return handle.read(newline + 1)
