"""The memory timeline (MLKUBE_MEMORY_PROBE_EVERY): off unless a positive period is set; one
JSON line per period with RSS, the peak so far and the gauges; a failing gauge is left out."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

from mlkube.handlers import memory_timeline as timeline


def test_off_unless_a_positive_period_is_set() -> None:
    assert timeline.period_from_env({}) is None
    assert timeline.period_from_env({timeline.ENV_EVERY: ""}) is None
    assert timeline.period_from_env({timeline.ENV_EVERY: "0"}) is None
    assert timeline.period_from_env({timeline.ENV_EVERY: "soon"}) is None
    assert timeline.period_from_env({timeline.ENV_EVERY: "0.5"}) == 0.5


def test_the_file_follows_the_probe_prefix(tmp_path: Path) -> None:
    path = timeline.path_from_env({"MLKUBE_MEMORY_PROBE": str(tmp_path / "op")})
    assert path == tmp_path / "op-timeline.jsonl"
    assert timeline.path_from_env({}).name == "mlkube-memory-timeline.jsonl"


def test_proc_status_reads_rss_and_peak_in_bytes() -> None:
    text = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t3\n"
    assert timeline.proc_status(text) == {"rss": 1024 * 1024, "hwm": 2048 * 1024}


def test_samples_every_period_until_stopped(tmp_path: Path) -> None:
    def changing() -> int:
        raise RuntimeError("dictionary changed size during iteration")

    path = tmp_path / "t.jsonl"
    counter = iter(range(1000))
    run = timeline.Timeline(path, 0.02, {"pending": lambda: next(counter), "busy": changing})
    run.start()
    time.sleep(0.3)
    run.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert 5 <= len(lines) <= 20
    assert [line["pending"] for line in lines] == list(range(len(lines)))
    assert all("busy" not in line for line in lines)
    assert all(line["rss"] > 0 and line["hwm"] >= line["rss"] for line in lines)
    assert all(a["t"] < b["t"] for a, b in itertools.pairwise(lines))
    time.sleep(0.1)
    assert len(path.read_text().splitlines()) == len(lines)  # stopped: no more lines
