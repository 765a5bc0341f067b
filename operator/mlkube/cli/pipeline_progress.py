"""Per-step progress of a PipelineRun, from its status alone (`run --wait`, `run-local`).

Pure: `StepTracker.changes(status)` returns one line per step whose phase, attempt or cache
decision changed since the last call, e.g.

    train     Running    attempt 1  cache miss (no entry)
    train     Succeeded  attempt 1  cache miss (no entry)  12.3s
    evaluate  Succeeded  cache hit (run credit-retrain-x7k2p)  0.0s

so a log shows each change once and a quiet run prints nothing. `wait_for_run` polls with an
injected clock and sleep (tests drive it without a cluster or real time).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from mlkube.api.pipeline_run import FINISHED_RUN_PHASES
from mlkube.cli.waiting import WaitTimeout as WaitTimeout  # re-exported for the verbs
from mlkube.cli.waiting import wait_until_finished

NAME_WIDTH: Final = 12


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def step_duration(step: Mapping[str, Any]) -> str:
    """Start to completion of a finished step, '' otherwise."""
    start, end = parse_time(step.get("startTime")), parse_time(step.get("completionTime"))
    if start is None or end is None:
        return ""
    return format_seconds(max(0.0, (end - start).total_seconds()))


def cache_text(step: Mapping[str, Any]) -> str:
    """`cache hit (run X)`, `cache miss (reason)`, or '' before any decision."""
    cache = step.get("cache") or {}
    if not cache:
        return ""
    if cache.get("hit"):
        source = cache.get("sourceRun")
        return "cache hit" + (f" (run {source})" if source else "")
    reason = cache.get("reason")
    return "cache miss" + (f" ({reason})" if reason else "")


def step_line(step: Mapping[str, Any], name_width: int = NAME_WIDTH) -> str:
    phase = str(step.get("phase") or "Pending")
    parts = [f"{step.get('name', '?'):<{name_width}}", f"{phase:<9}"]
    attempts = int(step.get("attempts") or 0)
    hit = bool((step.get("cache") or {}).get("hit"))
    if attempts and not hit:
        parts.append(f"attempt {attempts}")
    for extra in (cache_text(step), step_duration(step)):
        if extra:
            parts.append(extra)
    line = "  ".join(parts).rstrip()
    message = step.get("message")
    if message and phase != "Running":
        line += f": {str(message).splitlines()[0][:200]}"
    return line


def _state(step: Mapping[str, Any]) -> tuple[Any, ...]:
    cache = step.get("cache") or {}
    phase = step.get("phase")
    message = step.get("message") if phase in ("Waiting", "Failed") else None
    return (phase, step.get("attempts"), cache.get("hit"), cache.get("reason"), message)


class StepTracker:
    """What changed since the last status, as lines (steps in `order` first)."""

    def __init__(self, order: Sequence[str] = ()) -> None:
        self._order = {name: i for i, name in enumerate(order)}
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._phase: str | None = None
        self._width = max([NAME_WIDTH - 4, *(len(n) for n in order)]) + 1

    def changes(self, status: Mapping[str, Any]) -> list[str]:
        lines = []
        steps = sorted(status.get("steps") or [],
                       key=lambda s: (self._order.get(str(s.get("name")), 1 << 30),
                                      str(s.get("name"))))  # fmt: skip
        for step in steps:
            name = str(step.get("name"))
            state = _state(step)
            if self._seen.get(name) == state:
                continue
            if name not in self._seen and state[0] in (None, "Pending") and not step.get("message"):
                self._seen[name] = state  # not started yet: nothing to say
                continue
            self._seen[name] = state
            lines.append(step_line(step, self._width))
        phase = str(status.get("phase") or "Pending")
        if phase != self._phase and (self._phase is not None or phase != "Pending"):
            progress = f" ({status['progress']} steps)" if status.get("progress") else ""
            run_line = f"run {phase}{progress}"
            # The run starting comes before its first step; the run ending after its last.
            lines = [*lines, run_line] if phase in FINISHED_RUN_PHASES else [run_line, *lines]
        self._phase = phase
        return lines


def _run_hint(name: str) -> str:
    return (
        f"follow it with `mlkube pipeline runs show {name}`, "
        f"stop it with `mlkube pipeline runs cancel {name}`"
    )


# Poll the run until it finished; return it. WaitTimeout after `timeout` seconds.
wait_for_run = functools.partial(
    wait_until_finished, kind="PipelineRun", finished=FINISHED_RUN_PHASES, hint=_run_hint
)


def failure_lines(run: Mapping[str, Any]) -> list[str]:
    """Why a run ended badly: its message, then each Failed/Cancelled step's message."""
    status = run.get("status") or {}
    name = run["metadata"]["name"]
    head = f"PipelineRun {name} {status.get('phase')}"
    lines = [head + (f": {status['message']}" if status.get("message") else "")]
    for step in status.get("steps") or []:
        if step.get("phase") in ("Failed", "Cancelled"):
            lines.append(f"  step {step.get('name')} {step.get('phase')}"
                         + (f": {step['message']}" if step.get("message") else ""))  # fmt: skip
    return lines
