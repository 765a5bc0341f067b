"""The operator's memory probe (MLKUBE_MEMORY_PROBE): a SIGUSR1 writes a report of what holds
memory (RSS, allocator counters, objects by type, tasks, threads, Kopf's memories) and, while
tracemalloc runs, the top allocation sites and a snapshot to diff."""

from __future__ import annotations

import json
import os
import signal
import time
import tracemalloc
from pathlib import Path

import pytest

from mlkube.handlers import memory_probe


def test_report_counts_memory_and_objects() -> None:
    data = memory_probe.report()
    assert data["rss"] > 10 * 2**20
    assert data["threads"] >= 1
    assert data["gc_objects"]["dict"] > 0 or data["gc_objects"]["function"] > 0
    assert data["malloc"]["in_use"] > 0  # glibc: the counters are read
    assert data["pymalloc"]["in_use"] <= data["pymalloc"]["total"]
    assert "top" not in data  # no tracemalloc: no sites


def test_report_with_tracemalloc_lists_sites_and_dumps_a_snapshot(tmp_path: Path) -> None:
    tracemalloc.start(1)
    try:
        hold = [bytearray(1000) for _ in range(1000)]
        data = memory_probe.report(str(tmp_path / "snap"))
    finally:
        tracemalloc.stop()
    assert data["traced"] >= 1_000_000
    assert any("test_memory_probe.py" in site for site, _, _ in data["top"])
    assert tracemalloc.Snapshot.load(str(tmp_path / "snap")).traces
    del hold


def test_sigusr1_writes_numbered_reports(tmp_path: Path) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        memory_probe.install(str(tmp_path / "probe"))
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not (tmp_path / "probe-2.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        first = json.loads((tmp_path / "probe-1.json").read_text())
        assert first["rss"] > 0
        assert (tmp_path / "probe-2.json").exists()
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memory_probe.ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    memory_probe.install_from_env()
    assert signal.getsignal(signal.SIGUSR1) is before
