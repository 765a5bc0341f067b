"""A debugging knob: the operator's memory over time, to see when a peak happens and what was
in flight then (off by default; docs/benchmarks/operator-scale.md, "Memory, round 3").

With MLKUBE_MEMORY_PROBE_EVERY=<seconds>, a thread appends one JSON line per period to
`<MLKUBE_MEMORY_PROBE or $TMPDIR/mlkube-memory>-timeline.jsonl`: seconds since start, VmRSS and
VmHWM (the peak so far), glibc's in-use and free-but-kept bytes, threads, asyncio tasks, and
the watch reactions' pending passes. A thread rather than an asyncio task: a burst that keeps
the event loop busy is when the samples matter. Cheap reads only (no gc walk, no pymalloc
dump: that one redirects stderr, which other threads write to).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import kopf

from mlkube.handlers.memory_probe import ENV as PROBE_ENV
from mlkube.handlers.memory_probe import malloc_info

ENV_EVERY: Final = "MLKUBE_MEMORY_PROBE_EVERY"
Gauges = Mapping[str, Callable[[], int]]


def period_from_env(environ: Mapping[str, str]) -> float | None:
    """The sampling period in seconds, or None (off: unset, empty, not a positive number)."""
    try:
        every = float(environ.get(ENV_EVERY, "").strip() or "0")
    except ValueError:
        return None
    return every if every > 0 else None


def path_from_env(environ: Mapping[str, str]) -> Path:
    prefix = environ.get(PROBE_ENV, "").strip() or os.path.join(
        tempfile.gettempdir(), "mlkube-memory"
    )
    return Path(f"{prefix}-timeline.jsonl")


def proc_status(text: str) -> dict[str, int]:
    """VmRSS and VmHWM (bytes) of a /proc/<pid>/status text."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name[2:].lower()] = int(value.split()[0]) * 1024
    return out


def sample(started: float, gauges: Gauges) -> dict[str, Any]:
    """One line of the timeline; a gauge that fails (read mid-change) is left out."""
    line: dict[str, Any] = {"t": round(time.monotonic() - started, 3)}
    line.update(proc_status(Path("/proc/self/status").read_text()))
    malloc = malloc_info()
    line.update({k: malloc[k] for k in ("in_use", "free_kept") if k in malloc})
    line["threads"] = threading.active_count()
    for name, gauge in gauges.items():
        with contextlib.suppress(RuntimeError):  # a dict or set changed size mid-read
            line[name] = gauge()
    return line


class Timeline:
    def __init__(self, path: Path, every: float, gauges: Gauges) -> None:
        self.path = path
        self.every = every
        self.gauges = gauges
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlkube-memory-timeline",
                                        daemon=True)  # fmt: skip

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        started = time.monotonic()
        with self.path.open("a") as out:
            while True:
                out.write(json.dumps(sample(started, self.gauges)) + "\n")
                out.flush()  # readable while the operator runs
                if self._stop.wait(self.every):
                    return


def operator_gauges(loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], int]]:
    from mlkube.handlers import endpoint  # what is in flight; imported late (main imports it)

    return {
        "tasks": lambda: len(asyncio.all_tasks(loop)),
        "refreshes": endpoint.REFRESHES.pending,
        "reconciles": endpoint.RECONCILES.pending,
        "resumes": endpoint.RESUME_PASSES.pending,
        "waiting": lambda: len(endpoint.WAITING),
    }


_RUNNING: list[Timeline] = []


@kopf.on.startup()
async def start_timeline(**_: Any) -> None:
    every = period_from_env(os.environ)
    if every is None:
        return
    timeline = Timeline(path_from_env(os.environ), every,
                        operator_gauges(asyncio.get_running_loop()))  # fmt: skip
    timeline.start()
    _RUNNING.append(timeline)


@kopf.on.cleanup()
async def stop_timeline(**_: Any) -> None:
    while _RUNNING:
        await asyncio.to_thread(_RUNNING.pop().stop)
