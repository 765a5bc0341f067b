"""A PipelineRun's phase, message, progress and kstatus conditions from its step phases (pure).

Pending until a step starts; Running while any step is unfinished; then Failed when a step
failed without `continueOnFailure` (or was cancelled), else Succeeded; Cancelled as soon as
the run is cancelled. Conditions (docs/status.md): Ready on success, Reconciling while Pending
or Running, Stalled on Failed or Cancelled (reconcile/kstatus.py, like every kind).

    run_outcome(snapshot, phases, status_steps, *, messages, started, cancel, conditions,
                generation, now) -> Outcome
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube.api.pipeline import PipelineSpec
from mlkube.reconcile.batch_schedule import format_time
from mlkube.reconcile.conditions import Condition, set_condition
from mlkube.reconcile.kstatus import kstatus_conditions

FINISHED: Final = ("Succeeded", "Failed", "Skipped", "Cancelled")
REASONS: Final = {
    "Pending": "Pending",
    "Running": "Running",
    "Succeeded": "Succeeded",
    "Failed": "StepFailed",
    "Cancelled": "Cancelled",
}
_STATES: Final = {"Pending": "working", "Running": "working", "Succeeded": "done"}


@dataclass(frozen=True)
class Outcome:
    phase: str
    message: str
    progress: str  # finished steps / steps
    conditions: list[Condition]


def _phase_and_message(
    snapshot: PipelineSpec,
    phases: Mapping[str, str],
    status_steps: Mapping[str, Mapping[str, Any]],
    messages: Mapping[str, str],
    started: bool,
    cancel: bool,
) -> tuple[str, str]:
    names = [s.name for s in snapshot.steps]
    done = [n for n in names if phases.get(n) in FINISHED]
    if cancel:
        return "Cancelled", f"the run was cancelled ({len(done)}/{len(names)} steps finished)"
    tolerant = {s.name for s in snapshot.steps if s.continue_on_failure}
    if len(done) < len(names):
        moving = started or any(phases.get(n, "Pending") != "Pending" for n in names)
        running = sorted(n for n in names if phases.get(n) in ("Running", "Waiting"))
        text = f"{len(done)}/{len(names)} steps finished"
        if running:
            text += "; running: " + ", ".join(running[:5]) + (" …" if len(running) > 5 else "")
        return ("Running" if moving else "Pending"), text
    failing = [n for n in names if phases[n] == "Cancelled"]
    failing += [n for n in names if phases[n] == "Failed" and n not in tolerant]
    if failing:
        first = min(failing, key=names.index)
        why = messages.get(first) or str(status_steps.get(first, {}).get("message") or "")
        verb = "was cancelled" if phases[first] == "Cancelled" else "failed"
        return "Failed", f"step {first} {verb}" + (f": {why}" if why else "")
    succeeded = [n for n in names if phases[n] == "Succeeded"]
    hits = sum(1 for n in succeeded if (status_steps.get(n, {}).get("cache") or {}).get("hit"))
    skipped = sum(1 for n in names if phases[n] == "Skipped")
    tolerated = sum(1 for n in names if phases[n] == "Failed")
    text = f"{len(succeeded)}/{len(names)} steps succeeded ({hits} from the cache"
    text += f", {skipped} skipped" if skipped else ""
    text += f", {tolerated} failed with continueOnFailure" if tolerated else ""
    return "Succeeded", text + ")"


def run_outcome(
    snapshot: PipelineSpec,
    phases: Mapping[str, str],
    status_steps: Mapping[str, Mapping[str, Any]],
    *,
    messages: Mapping[str, str],
    started: bool,
    cancel: bool,
    conditions: list[Condition],
    generation: int | None,
    now: dt.datetime,
) -> Outcome:
    """The run's phase and conditions; `messages` are step messages decided in this pass
    (they win over the status' own)."""
    phase, message = _phase_and_message(snapshot, phases, status_steps, messages, started, cancel)
    at = format_time(now)
    reason = REASONS[phase]
    conds = kstatus_conditions(
        conditions, state=_STATES.get(phase, "stalled"), reason=reason, message=message,
        generation=generation, now=at,
    )  # fmt: skip
    conds = set_condition(
        conds, type_="Ready", status=phase == "Succeeded", reason=reason, message=message,
        generation=generation, now=at,
    )  # fmt: skip
    finished = sum(1 for s in snapshot.steps if phases.get(s.name) in FINISHED)
    return Outcome(phase, message, f"{finished}/{len(snapshot.steps)}", conds)
