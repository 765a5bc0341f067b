"""A debugging knob: what holds the operator's memory, dumped on SIGUSR1 (off by default).

With MLKUBE_MEMORY_PROBE=<path prefix>, each SIGUSR1 writes `<prefix>-<k>.json`: RSS, glibc's
malloc counters (in use vs free-but-kept: allocator fragmentation), the traced Python heap and
its top allocation sites when tracemalloc runs (PYTHONTRACEMALLOC=<frames>; the snapshot is also
dumped next to it for `Snapshot.load(...).compare_to`), gc-tracked objects by type, asyncio
tasks, threads and the objects Kopf remembers. docs/benchmarks/operator-scale.md ("Memory")
says how the numbers were read; bench/operator/memprofile.py drives it.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import json
import os
import signal
import sys
import tempfile
import threading
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any, Final

ENV: Final = "MLKUBE_MEMORY_PROBE"
TOP: Final = 60


_MALLINFO2_FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS.split()]


def trim_memory() -> None:
    """Return glibc's free heap pages to the system (`malloc_trim`): after a burst the
    process keeps them as RSS. Nothing elsewhere (musl, macOS)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def malloc_info() -> dict[str, int]:
    """glibc's counters over every arena: in use, free but kept, mmapped (empty elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {"in_use": info.uordblks, "free_kept": info.fordblks, "mmapped": info.hblkhd,
            "arena": info.arena}  # fmt: skip


def pymalloc_info() -> dict[str, int]:
    """CPython's small-object allocator (sys._debugmallocstats, on fd 2): its arenas are
    freed only when wholly empty, so allocated vs in-use blocks is its fragmentation. Empty
    while tracemalloc runs (CPython reports pymalloc only when it is the allocator)."""
    with tempfile.TemporaryFile(mode="w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    wanted = {"# arenas allocated current": "arenas", "# bytes in allocated blocks": "in_use",
              "# bytes in available blocks": "free_blocks", "Total": "total"}  # fmt: skip
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        known = name.strip() in wanted and wanted[name.strip()] not in out  # the first Total
        if known and value.strip().replace(",", "").isdigit():
            out[wanted[name.strip()]] = int(value.strip().replace(",", ""))
    return out


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def report(snapshot_path: str | None = None) -> dict[str, Any]:
    gc.collect()
    objects = gc.get_objects()
    by_type = collections.Counter(type(o).__qualname__ for o in objects)
    kopf_memories = [len(getattr(o, "_items", ())) for o in objects
                     if type(o).__name__ == "ResourceMemories"]  # fmt: skip
    del objects
    try:
        tasks = collections.Counter(
            (t.get_name().split(" ")[0] + " " + t.get_name().split(" ")[1])
            if t.get_name().startswith("mlkube ")
            else t.get_coro().__qualname__  # type: ignore[union-attr]
            for t in asyncio.all_tasks(asyncio.get_running_loop())
        )
    except (RuntimeError, IndexError):
        tasks = collections.Counter()
    out: dict[str, Any] = {
        "rss": rss_bytes(),
        "malloc": malloc_info(),
        "pymalloc": pymalloc_info(),
        "threads": threading.active_count(),
        "tasks": dict(tasks.most_common(TOP)),
        "kopf_memories": kopf_memories,
        "gc_objects": dict(by_type.most_common(TOP)),
    }
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        out["traced"], out["traced_peak"] = tracemalloc.get_traced_memory()
        out["top"] = [
            [str(s.traceback[0]), s.size, s.count]
            for s in snapshot.statistics("lineno")[:TOP]
        ]  # fmt: skip
        if snapshot_path:
            snapshot.dump(snapshot_path)
    return out


def install(prefix: str) -> None:
    """Dump a report on each SIGUSR1 (in the main thread, between two steps of the loop)."""
    count = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        path = f"{prefix}-{count}"
        data = report(path + ".snap")
        Path(path + ".tmp").write_text(json.dumps(data, indent=1))
        os.replace(path + ".tmp", path + ".json")  # complete when it appears

    signal.signal(signal.SIGUSR1, dump)


def install_from_env() -> None:
    prefix = os.environ.get(ENV, "").strip()
    if prefix:
        install(prefix)
