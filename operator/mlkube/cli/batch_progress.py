"""The live view of a running BatchJob (`invoke --wait`, `run-local`), from its status alone.

On a terminal one line is redrawn in place whenever what it shows changes; in a log (not a TTY)
a plain line is written on every phase change and otherwise at most every `interval` seconds,
so CI output stays readable. The wait loop takes its clock, sleep and fetch as arguments, so
tests drive it without a cluster or real time.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

from mlkube.cli.waiting import WaitTimeout as WaitTimeout  # re-exported for the verbs
from mlkube.cli.waiting import wait_until_finished

TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed", "Cancelled"})
BAR_WIDTH: Final = 24


def format_count(value: Any) -> str:
    return f"{int(value or 0):,}"


def render_counts(status: Mapping[str, Any], width: int = BAR_WIDTH) -> str:
    """`[######------]  50%  mini-batches 5/10  items 500 ok, 3 failed of 1,000`."""
    mbs, items = status.get("miniBatches") or {}, status.get("items") or {}
    percent = max(0, min(100, int(status.get("progress") or 0)))
    filled = percent * width // 100
    # CSV/JSONL totals are estimates until every index reported (the merge counts exactly).
    exact = status.get("phase") in ("Merging", "Succeeded")
    estimate = "~" if (status.get("plan") or {}).get("itemsEstimated") and not exact else ""
    done = int(mbs.get("succeeded") or 0) + int(mbs.get("failed") or 0)
    text = (
        f"[{'#' * filled}{'-' * (width - filled)}] {percent:3d}%  "
        f"mini-batches {format_count(done)}/{format_count(mbs.get('total'))}"
    )
    if mbs.get("failed"):
        text += f" ({format_count(mbs['failed'])} failed)"
    return text + (
        f"  items {format_count(items.get('succeeded'))} ok, {format_count(items.get('failed'))}"
        f" failed of {estimate}{format_count(items.get('total'))}"
    )


def render_line(status: Mapping[str, Any]) -> str:
    phase = str(status.get("phase") or "Pending")
    if not (status.get("miniBatches") or {}).get("total") and phase in ("Pending", "Planning"):
        waiting = "listing the input" if phase == "Planning" else "waiting for the operator"
        return f"{phase:<9} {waiting}"
    return f"{phase:<9} {render_counts(status)}"


class JobDisplay:
    """Callable with a BatchJob's status; draws it on `stream` (stderr by default)."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._live = self._stream.isatty()
        self._interval = interval
        self._clock = clock
        self._shown: str | None = None
        self._phase: str | None = None
        self._last_write = float("-inf")

    def __call__(self, status: Mapping[str, Any]) -> None:
        line = render_line(status)
        phase = str(status.get("phase") or "Pending")
        if line == self._shown:
            return
        final = phase in TERMINAL_PHASES
        if self._live:
            self._stream.write(f"\r\x1b[K{self._label} {line}" + ("\n" if final else ""))
        elif phase != self._phase or final or self._clock() - self._last_write >= self._interval:
            self._stream.write(f"{self._label} {line}\n")
            self._last_write = self._clock()
        else:
            return  # an unchanged phase within the interval: shown on the next write
        self._stream.flush()
        self._shown, self._phase = line, phase

    def close(self) -> None:
        """End a live line that did not reach a terminal phase (timeout, Ctrl-C)."""
        if self._live and self._shown is not None and self._phase not in TERMINAL_PHASES:
            self._stream.write("\n")
            self._stream.flush()


def _job_hint(name: str) -> str:
    return f"follow it with `mlkube batch jobs show {name}`"


# Poll the job until it finished; return it. WaitTimeout after `timeout` seconds.
wait_for_job = functools.partial(
    wait_until_finished, kind="BatchJob", finished=TERMINAL_PHASES, hint=_job_hint
)


def outcome_lines(job: Mapping[str, Any]) -> list[str]:
    """What a finished job says on its way out: the phase, message and last errors."""
    status = job.get("status") or {}
    name = job["metadata"]["name"]
    phase = status.get("phase")
    lines = [
        f"BatchJob {name} {phase}" + (f": {status['message']}" if status.get("message") else "")
    ]
    lines += ["  " + format_error(e) for e in (status.get("lastErrors") or [])[-5:]]
    return lines


def format_error(error: Mapping[str, Any]) -> str:
    item = f" item {error['item']}" if error.get("item") else ""
    return (
        f"mini-batch {error.get('miniBatch')} (attempt {error.get('attempt', 1)}){item}: "
        f"{error.get('message')}"
    )
