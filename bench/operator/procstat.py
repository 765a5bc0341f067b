"""The operator process's memory and CPU, read from /proc like `ps` does (no psutil): resident
set size (VmRSS, and its peak sampled every `interval`) and CPU seconds (utime + stime of the
process and its waited-for children), so a phase's CPU is the difference of two readings."""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def parse_rss_kib(status: str) -> int:
    """VmRSS of a /proc/<pid>/status text, in KiB (0 when absent: a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def parse_cpu_ticks(stat: str) -> int:
    """utime + stime + cutime + cstime of a /proc/<pid>/stat line (the command, field 2, may
    hold spaces and parentheses: fields are counted after its last ')')."""
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime..cstime are fields 14..17.
    return sum(int(v) for v in fields[11:15])


def rss_mib(pid: int) -> float:
    return parse_rss_kib(Path(f"/proc/{pid}/status").read_text()) / 1024


def cpu_seconds(pid: int) -> float:
    return parse_cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / TICKS


class Sampler:
    """Peak RSS of one process, sampled in a thread while the `with` block runs."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_mib = 0.0
        self.last_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last_mib = rss_mib(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return  # the process ended (a restart): the peak so far stands
            self.peak_mib = max(self.peak_mib, self.last_mib)
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
