"""A dependency-free textual progress bar for uploads, written to stderr.

On a terminal it redraws in place (only when the shown percentage changes); in logs it writes
one final line, so CI output is not flooded with carriage returns.
"""

from __future__ import annotations

import sys
from typing import TextIO


def format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def render_bar(done: int, total: int, width: int = 30) -> str:
    """e.g. `[#############-----------------]  45%  12.0 MiB / 27.0 MiB`"""
    fraction = 1.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = round(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {int(fraction * 100):3d}%  {format_bytes(done)} / {format_bytes(total)}"


class ProgressBar:
    """Callable as `progress(done, total)`, the signature `mlkube.storage.upload` reports with."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._live = self._stream.isatty()
        self._shown: int | None = None

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total <= 0 else done * 100 // total
        finished = done >= total
        if percent == self._shown and not finished:
            return
        if self._live:
            self._stream.write(f"\r{self._label} {render_bar(done, total)}")
            if finished:
                self._stream.write("\n")
        elif finished:
            self._stream.write(f"{self._label} {render_bar(done, total)}\n")
        self._stream.flush()
        self._shown = 101 if finished else percent
