"""Why a serving pod is not becoming Ready, in one line a user can act on.

A Deployment's own status only says "0/1 ready" until its progress deadline (10 min) passes.
Users of KServe and Azure ML expect the cause right away: a storage initializer that refused a
tampered artifact (its exit code and last log line), an image that cannot be pulled, a container
in CrashLoopBackOff, a pod that cannot be scheduled. Pure: pod objects come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

# Waiting reasons that do not fix themselves: the pod will not become Ready without a change.
FATAL_WAITING: Final = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
MAX_DETAIL: Final = 300


@dataclass(frozen=True)
class PodProblem:
    """`fatal`: needs a human (the endpoint is Degraded); otherwise only a reason to wait."""

    message: str
    fatal: bool


def _last_line(text: str) -> str:
    """The last non-empty line of a termination message (the error, after any traceback)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The failed run of a container: the current state, else the previous one."""
    for key in ("state", "lastState"):
        term = (status.get(key) or {}).get("terminated")
        if term and int(term.get("exitCode") or 0) != 0:
            return dict(term)
    return None


def _exit_text(term: Mapping[str, Any]) -> str:
    text = f"exited {term.get('exitCode')}"
    detail = _last_line(str(term.get("message") or "")) or str(term.get("reason") or "")
    return f"{text}: {detail}" if detail else text


def container_problem(status: Mapping[str, Any], init: bool) -> PodProblem | None:
    """The problem of one container status, None when it is fine or still starting."""
    kind = "init container" if init else "container"
    name = f"{kind} {status.get('name')}"
    waiting = (status.get("state") or {}).get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    term = _terminated(status)
    if reason in FATAL_WAITING:
        detail = _exit_text(term) if term else _last_line(str(waiting.get("message") or ""))
        return PodProblem(f"{name} {reason}" + (f" ({detail})" if detail else ""), fatal=True)
    if term and init:
        # An init container that failed is retried; once it failed twice it is not a blip.
        repeated = int(status.get("restartCount") or 0) >= 1
        return PodProblem(f"{name} {_exit_text(term)}", fatal=repeated)
    return None


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """The first problem of a pod: init containers (in order), containers, scheduling."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None  # going away: an old replica during a rollout
    for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for container in status.get(key) or []:
            problem = container_problem(container, init)
            if problem:
                return problem
    if status.get("phase") == "Failed":
        reason = status.get("reason") or "Failed"
        detail = _last_line(str(status.get("message") or ""))
        return PodProblem(f"pod {reason}" + (f": {detail}" if detail else ""), fatal=False)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            detail = _last_line(str(cond.get("message") or cond.get("reason") or ""))
            return PodProblem(f"pod not scheduled: {detail}", fatal=False)
    return None


def first_problem(pods: Iterable[Mapping[str, Any]]) -> PodProblem | None:
    """The problem to show for a set of pods: a fatal one first, then any, by pod name."""
    found = [
        (p, str((pod.get("metadata") or {}).get("name")))
        for pod in pods
        if (p := pod_problem(pod)) is not None
    ]
    found.sort(key=lambda item: (not item[0].fatal, item[1]))
    return found[0][0] if found else None
