"""Pod status as a kubelet reports it, for the dev pod executor (pure; see podexec.py).

The Job controller reads exactly these fields: the pod phase (Succeeded/Failed), each
container's `state.terminated.exitCode` (podFailurePolicy `onExitCodes`) and the conditions; the
operator reads `state.terminated.message`. So the executor reports them as a kubelet does:
phase Pending while init containers run, Running once the containers started, then Succeeded
or Failed, with exit code, reason (Completed/Error) and the termination message.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from typing import Any

MESSAGE_LIMIT = 4096  # the kubelet's cap on one container's termination message
LOG_TAIL_BYTES = 2048  # FallbackToLogsOnError: the kubelet's tail of the log...
LOG_TAIL_LINES = 80  # ...at most this many lines
OWN_CONDITIONS = ("Initialized", "ContainersReady", "Ready")


def exit_code(returncode: int) -> int:
    """A process's exit status as a container runtime reports it (killed by signal N: 128+N)."""
    return 128 - returncode if returncode < 0 else returncode


def termination_message(file_text: str, log_bytes: bytes, code: int, fallback_to_logs: bool) -> str:
    """The container's terminationMessage: the file (cut to 4 KiB), or, for
    FallbackToLogsOnError, the log's tail when the file is empty and the container failed."""
    text = file_text.encode()[:MESSAGE_LIMIT].decode(errors="ignore")
    if text or not fallback_to_logs or code == 0:
        return text
    tail = b"\n".join(log_bytes.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_BYTES:]
    return tail.decode(errors="replace")


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def running(started_at: str) -> dict[str, Any]:
    return {"running": {"startedAt": started_at}}


def terminated(
    code: int, started_at: str, finished_at: str, message: str = "", reason: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if code > 128 and reason is None and code - 128 in signal.valid_signals():
        body["signal"] = code - 128
    if message:
        body["message"] = message
    return {"terminated": body}


def container_status(
    container: Mapping[str, Any], state: dict[str, Any], container_id: str = ""
) -> dict[str, Any]:
    is_running = "running" in state
    status: dict[str, Any] = {
        "name": container["name"],
        "image": container.get("image") or "local",
        "imageID": "",
        "ready": is_running,
        "started": is_running,
        "restartCount": 0,
        "state": state,
    }
    if container_id:
        status["containerID"] = container_id
    return status


def _condition(
    old: Sequence[Mapping[str, Any]],
    kind: str,
    ok: bool,
    now: str,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    value = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == kind), None)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == value else None
    cond: dict[str, Any] = {"type": kind, "status": value, "lastTransitionTime": since or now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _unready(statuses: list[dict[str, Any]], names: list[str]) -> str:
    """The kubelet's message for containers not ready: those with no status yet, then those
    not running; "" when all are ready."""
    known = {s["name"]: s for s in statuses}
    parts = []
    if unknown := [n for n in names if n not in known]:
        parts.append(f"containers with unknown status: [{' '.join(unknown)}]")
    if unready := [n for n in names if n in known and not known[n]["ready"]]:
        parts.append(f"containers with unready status: [{' '.join(unready)}]")
    return ", ".join(parts)


def pod_status(
    pod: Mapping[str, Any],
    phase: str,
    init_statuses: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
    now: str,
    start_time: str,
    message: str = "",
    reason: str = "",
) -> dict[str, Any]:
    """The merge patch for pods/status: the whole status a kubelet would report now. Conditions
    other than the kubelet's own (PodScheduled, DisruptionTarget...) are kept as they are."""
    old = (pod.get("status") or {}).get("conditions") or []
    spec = pod["spec"]
    done = [
        s["name"] for s in init_statuses if s["state"].get("terminated", {}).get("exitCode") == 0
    ]
    incomplete = [c["name"] for c in spec.get("initContainers") or [] if c["name"] not in done]
    unready = _unready(statuses, [c["name"] for c in spec["containers"]])
    ready = phase == "Running" and not unready
    terminal = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(phase, "")
    initialized = not incomplete or bool(terminal)
    why = f"containers with incomplete status: [{' '.join(incomplete)}]"
    init_why = ("", "") if initialized else ("ContainersNotInitialized", why)
    # A finished pod's reason is only PodCompleted/PodFailed, as the kubelet's.
    not_ready = (terminal, "") if ready or terminal else ("ContainersNotReady", unready)
    conditions = [dict(c) for c in old if c.get("type") not in OWN_CONDITIONS]
    conditions += [
        _condition(old, "Initialized", initialized, now, *init_why),
        _condition(old, "ContainersReady", ready, now, *not_ready),
        _condition(old, "Ready", ready, now, *not_ready),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": start_time,
        "containerStatuses": statuses,
        "message": message or None,
        "reason": reason or None,
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = init_statuses
    return {"status": status}
