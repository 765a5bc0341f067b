"""Pure helpers of `mlkube endpoint rollout`: the request a verb writes, and the rollout view.

The request (docs/rollouts.md §5) is checked against the rollout's state first, so a verb that
cannot do anything says why instead of leaving an annotation the operator would ignore. The view
(`rollout status`, and the rollout section of `endpoint show`) prints the phase, the step and what
it is, the candidate's weight and mirror, each metric's last measurements with value, condition
and verdict, the abort reason and "spec wants X, running Y"; lines fit 80 columns.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.rollout import RolloutStep
from mlkube.api.rollout_status import ACTIVE_PHASES, RolloutAction, RolloutRequest
from mlkube.cli.errors import CliError
from mlkube.cli.model_view import format_age
from mlkube.contract import ANNOTATION_ROLLOUT_REQUEST

WIDTH: Final = 80
LABEL: Final = 12  # "Candidate:  " — values start in this column
Obj = Mapping[str, Any]


def _rollout(obj: Obj) -> tuple[Obj, Obj]:
    return ((obj.get("spec") or {}).get("rollout") or {}), (
        (obj.get("status") or {}).get("rollout") or {}
    )


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def build_request(obj: Obj, action: RolloutAction, request_id: str) -> RolloutRequest:
    """The request for `action` on the endpoint's running rollout; CliError when it has none or
    the action cannot apply in its phase."""
    spec, status = _rollout(obj)
    name = _name(obj)
    if not spec:
        raise CliError(
            f"OnlineEndpoint {name} declares no rollout (spec.rollout): a traffic change applies"
            " at once; see docs/rollouts.md"
        )
    revision, phase = status.get("revision"), status.get("phase")
    if not revision or not phase:
        raise CliError(
            f"OnlineEndpoint {name}: no rollout has started yet (status.rollout is empty; is the"
            " operator running?)"
        )
    # What the operator's state machine acts on (docs/rollouts.md §2 "As built").
    if action == "retry":
        if phase != "Aborted":
            raise CliError(
                f"OnlineEndpoint {name}: nothing to retry: the rollout is {phase} (retry restarts"
                " an Aborted rollout; `promote` continues a Paused one)"
            )
    elif action == "promote-full":
        if phase == "Promoted":
            raise CliError(f"OnlineEndpoint {name}: nothing to promote: the rollout is Promoted")
    elif phase not in ACTIVE_PHASES:
        hint = (
            "; `retry` starts it again, `promote --full` goes to spec.traffic"
            if phase == "Aborted"
            else ""
        )
        raise CliError(f"OnlineEndpoint {name}: nothing to {action}: the rollout is {phase}{hint}")
    elif action == "promote" and status.get("reason") == "WaitingForCandidate":
        raise CliError(
            f"OnlineEndpoint {name}: nothing to promote yet: the rollout waits for the candidate"
            " to be Available (`promote --full` goes to spec.traffic now)"
        )
    return RolloutRequest(action=action, id=request_id, revision=revision)


def request_patch(obj: Obj, request: RolloutRequest) -> dict[str, Any]:
    """The merge patch writing the annotation; resourceVersion makes it fail rather than land
    on an object changed since the revision was read."""
    return {
        "metadata": {
            "resourceVersion": (obj.get("metadata") or {}).get("resourceVersion"),
            "annotations": {ANNOTATION_ROLLOUT_REQUEST: request.to_annotation()},
        }
    }


def pending_request(obj: Obj) -> str | None:
    """The action of a request written but not yet handled by the operator, if any."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ROLLOUT_REQUEST)
    if not text:
        return None
    try:
        request = RolloutRequest.model_validate_json(text)
    except ValidationError:
        return None
    _, status = _rollout(obj)
    return None if status.get("lastRequest") == request.id else request.action


def request_outcome(obj: Obj, request: RolloutRequest) -> str | None:
    """None while the operator has not handled `request`; what the rollout is once it has.
    CliError when it never will: another request replaced it, or the revision moved on."""
    _, status = _rollout(obj)
    if status.get("lastRequest") == request.id:
        reason = f" ({status['reason']})" if status.get("reason") else ""
        return f"handled: the rollout is {status.get('phase')}{reason}"
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    written = annotations.get(ANNOTATION_ROLLOUT_REQUEST) or ""
    if request.id not in written:
        raise CliError(f"request {request.id} was replaced by another request before it ran")
    revision = status.get("revision")
    if revision and revision != request.revision:
        raise CliError(
            f"the rollout moved to revision {revision[:19]} before request {request.id} ran;"
            " the operator ignores it (run the command again)"
        )
    return None


def _line(label: str, value: str) -> list[str]:
    """`Label:      value`, wrapped at WIDTH with continuation lines under the value."""
    head = f"{label + ':':<{LABEL}}"
    return textwrap.wrap(
        value, WIDTH, initial_indent=head, subsequent_indent=" " * LABEL,
        break_on_hyphens=False,
    ) or [head.rstrip()]  # fmt: skip


def _wrap(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(text, WIDTH, initial_indent=pad, subsequent_indent=pad + "  ")


def _split(split: Mapping[str, Any] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted((split or {}).items())) or "(none)"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"


def _step_text(spec: Obj, status: Obj) -> str:
    index, total = int(status.get("stepIndex") or 0), int(status.get("steps") or 0)
    if total and index >= total:
        return f"{total}/{total} done"
    steps = spec.get("steps") or []
    what = ""
    if index < len(steps):
        try:
            what = " " + RolloutStep.model_validate(steps[index]).describe()
        except ValidationError:
            what = ""
    return f"{index + 1}/{total or len(steps)}{what}"


def _times(status: Obj, now: datetime) -> str:
    parts = []
    if status.get("startedAt"):
        parts.append(f"started {format_age(status['startedAt'], now)} ago")
    if status.get("finishedAt"):
        parts.append(f"finished {format_age(status['finishedAt'], now)} ago")
    elif status.get("stepStartedAt"):
        parts.append(f"step started {format_age(status['stepStartedAt'], now)} ago")
    return ", ".join(parts)


def render_rollout(obj: Obj, now: datetime) -> list[str]:
    """The rollout view's lines (empty when the endpoint declares and runs no rollout)."""
    spec, status = _rollout(obj)
    if not spec and not status:
        return []
    endpoint_spec, endpoint_status = obj.get("spec") or {}, obj.get("status") or {}
    phase = status.get("phase")
    if not phase:
        return [
            *_line("Rollout", "not started (is the operator running?)"),
            *_line("Plan", f"{spec.get('candidate')} over {spec.get('stable')},"
                   f" {len(spec.get('steps') or [])} steps"),
        ]  # fmt: skip
    reason = f" ({status['reason']})" if status.get("reason") else ""
    times = _times(status, now)
    lines = _line("Rollout", f"{phase}{reason}" + (f", {times}" if times else ""))
    lines += _line("Step", _step_text(spec, status))
    scaled = ", scaled to 0 replicas" if status.get("scaledDown") else ""
    split = f"{status.get('weight', 0)}% live, {status.get('mirror', 0)}% mirrored{scaled}"
    if spec:
        split = f"{spec.get('candidate')}: {split} (stable {spec.get('stable')})"
    else:  # the rollout was taken out of the spec; its last status is still shown
        split += " (spec.rollout removed)"
    lines += _line("Candidate", split)
    wants = _split(endpoint_spec.get("traffic"))
    running = _split(endpoint_status.get("traffic"))
    if endpoint_spec.get("mirror") or endpoint_status.get("mirror"):
        wants += f" mirror {_split(endpoint_spec.get('mirror'))}"
        running += f" mirror {_split(endpoint_status.get('mirror'))}"
    lines += _line("Traffic", f"spec wants {wants}, running {running}")
    if status.get("message"):
        lines += _line("Message", str(status["message"]))
    abort = status.get("abort") or {}
    if abort:
        lines += _line("Aborted", _abort_text(abort))
    pending = pending_request(obj)
    if pending:
        lines += _line("Request", f"{pending} (not handled yet)")
    metrics = status.get("metrics") or []
    if metrics:
        lines.append("Metrics:")
        for metric in metrics:
            lines += _metric_lines(metric, now)
    return lines


def _abort_text(abort: Obj) -> str:
    metric, value = abort.get("metric"), abort.get("value")
    if not metric:
        return str(abort.get("message") or "manual abort")
    condition = f"condition {abort.get('condition') or '-'}"
    if value is None:  # no data, provider errors, a condition that does not compile
        return f"metric {metric}, {condition}: no value (see Message)"
    return f"metric {metric} measured {_num(value)}, {condition}"


def _metric_lines(metric: Obj, now: datetime) -> list[str]:
    name = str(metric.get("name")) + (" (background)" if metric.get("background") else "")
    counts = [
        f"{metric.get(key, 0)} {word}"
        for key, word in (
            ("successful", "ok"), ("failed", "failed"), ("inconclusive", "inconclusive"),
            ("errors", "errors"), ("noData", "no data"),
        )
        if metric.get(key)
    ]  # fmt: skip
    head = f"  {name}  {metric.get('phase', 'Running')}  {metric.get('count', 0)} measured"
    lines = _wrap(head + (f": {', '.join(counts)}" if counts else ""), 0)
    judged = f"success when {metric.get('condition') or '-'}"
    if metric.get("failureCondition"):
        judged += f"; failure when {metric['failureCondition']}"
    lines += _wrap(judged, 4)
    if metric.get("message"):
        lines += _wrap(str(metric["message"]), 4)
    for measurement in metric.get("measurements") or []:
        lines += _measurement_lines(measurement)
    if metric.get("nextMeasurementAt") and metric.get("phase", "Running") == "Running":
        lines += _wrap(f"next measurement {_until(metric['nextMeasurementAt'], now)}", 4)
    return lines


def _measurement_lines(measurement: Obj) -> list[str]:
    at = str(measurement.get("at") or "")
    clock = at[11:19] if len(at) >= 19 else at
    text = f"{clock}  {measurement.get('phase', '?'):<12} {_num(measurement.get('value'))}"
    if measurement.get("stable") is not None:
        text += (
            f" (candidate {_num(measurement.get('candidate'))},"
            f" stable {_num(measurement.get('stable'))})"
        )
    if measurement.get("samples") is not None:
        text += f"  n={measurement['samples']}"
    if measurement.get("message"):
        text += f"  ({measurement['message']})"
    return _wrap(text, 4)


def _until(when: str, now: datetime) -> str:
    due = datetime.fromisoformat(when.replace("Z", "+00:00"))
    seconds = int((due - now).total_seconds())
    return f"in {seconds}s" if seconds > 0 else "due now"


def render_status(obj: Obj, now: datetime) -> str:
    """`mlkube endpoint rollout status`: the endpoint's name, then the rollout view."""
    lines = render_rollout(obj, now)
    if not lines:
        raise CliError(f"OnlineEndpoint {_name(obj)} declares no rollout (spec.rollout)")
    return "\n".join([*_line("Endpoint", _name(obj)), *lines])


def is_finished(obj: Obj) -> bool:
    """The rollout ended (Promoted or Aborted) for the current spec."""
    _, status = _rollout(obj)
    return status.get("phase") in ("Promoted", "Aborted")


def watch_key(obj: Obj) -> str:
    """What `--watch` compares between reads: the rollout's state, the split, the request."""
    status = obj.get("status") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return json.dumps(
        [status.get("rollout"), status.get("traffic"), status.get("mirror"),
         (obj.get("spec") or {}).get("rollout"), annotations.get(ANNOTATION_ROLLOUT_REQUEST)],
        sort_keys=True,
    )  # fmt: skip
