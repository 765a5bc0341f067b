"""Read files and streams into memory only up to a byte cap.

The operator parses documents other parties produce (drift baselines from a bucket, summaries
from sidecars); reading one whole would let a mistaken or hostile producer exhaust the
operator's memory. These readers stop one byte past the cap and raise `TooLarge`, whose
message names what was read and the cap, so the caller's error explains itself.
"""

from __future__ import annotations

import os
from typing import Protocol


class TooLarge(OSError):
    """More bytes than the cap allows (an OSError: callers already handle read failures)."""


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def read_stream_bounded(stream: _Readable, cap: int, what: str) -> bytes:
    """All of `stream`, or `TooLarge` once more than `cap` bytes arrived."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(1024 * 1024, cap + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"{what} is larger than the {_mib(cap)} ({cap}-byte) cap")
        chunks.append(chunk)


def read_file_bounded(path: str | os.PathLike[str], cap: int, what: str | None = None) -> bytes:
    """The bytes of the file at `path`, or `TooLarge` when it holds more than `cap`."""
    label = what or os.path.basename(os.fspath(path))
    with open(path, "rb") as handle:
        return read_stream_bounded(handle, cap, label)
