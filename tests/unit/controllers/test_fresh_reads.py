"""FreshReads: a caller takes a read that started after its moment (one in flight or done),
never an older one; concurrent callers share one read; a failed read is not shared."""

from __future__ import annotations

import threading
import time

import pytest

from mlkube.controllers.fresh_reads import FreshReads


def test_a_read_started_before_the_moment_is_not_reused() -> None:
    reads: FreshReads[int] = FreshReads()
    calls = []
    before = time.monotonic()
    assert reads.read("ns", before, lambda: calls.append(1) or len(calls)) == 1
    assert reads.read("ns", before, lambda: calls.append(1) or len(calls)) == 1  # reused
    assert reads.read("ns", time.monotonic(), lambda: calls.append(1) or len(calls)) == 2
    assert reads.read("other", before, lambda: 7) == 7


def test_concurrent_callers_share_one_read_in_flight() -> None:
    reads: FreshReads[str] = FreshReads()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(5)
        return "list"

    moment = time.monotonic()
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(reads.read("ns", moment, slow)))
    first.start()
    assert started.wait(5)
    joiners = [
        threading.Thread(target=lambda: results.append(reads.read("ns", moment, slow)))
        for _ in range(5)
    ]
    for t in joiners:
        t.start()
    release.set()
    for t in [first, *joiners]:
        t.join(5)
    assert results == ["list"] * 6 and len(calls) == 1


def test_a_failed_read_is_not_shared() -> None:
    reads: FreshReads[str] = FreshReads()
    moment = time.monotonic()

    def broken() -> str:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        reads.read("ns", moment, broken)
    assert reads.read("ns", moment, lambda: "ok") == "ok"
