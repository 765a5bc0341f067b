"""Stopping many detached processes takes one grace period, not one per process: run-local's
servers must all be gone before a shell that killed it moves on (or kills it again)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mlkube.devcluster import procs

# Ignores SIGTERM like a server busy shutting down: only SIGKILL ends it.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def test_stop_all_ends_every_group_within_one_grace_period(tmp_path: Path) -> None:
    pids = [procs.spawn(f"p{i}", [sys.executable, "-c", STUBBORN], tmp_path) for i in range(3)]
    pids.append(procs.spawn("polite", [sys.executable, "-c", "import time; time.sleep(60)"],
                            tmp_path))  # fmt: skip
    time.sleep(1.0)  # the handlers are installed
    assert all(procs.alive(p) for p in pids)
    started = time.monotonic()
    procs.stop_all(pids, grace=2.0)
    took = time.monotonic() - started
    assert not any(procs.alive(p) for p in pids)
    # One by one this is 3 x 2 s of grace plus the kills; all at once about one grace period.
    assert took < 5.0, f"stop_all took {took:.1f}s"
