"""`mlkube env build-logs N:V [--follow]`: the build pod's container logs, in build order.

The build pod (docs/environments.md §2.1) runs init containers `tools`, `fetch-model`
(packaging only), `install`, then `push`; its logs are read through the API server
(`pods/log`), so the user needs no access to the node or registry. `--follow` polls: each
started container's log is re-read and only what is new is printed, until the pod has ended
(the termination status is written after the last line, so the end is whole). The pod fetch,
log read, output and sleep are arguments, so tests drive it without a cluster.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ENDED: Final = ("Succeeded", "Failed")
NORMAL_WAITING: Final = ("PodInitializing", "ContainerCreating")


def containers(pod: Mapping[str, Any]) -> list[tuple[str, bool, bool]]:
    """(name, started, finished) of every container in the order it runs: init containers
    first, one after the other, then the main ones."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    states: dict[str, Mapping[str, Any]] = {}
    for entry in [*(status.get("initContainerStatuses") or []),
                  *(status.get("containerStatuses") or [])]:  # fmt: skip
        states[str(entry.get("name"))] = entry
    out = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        name = str(container.get("name"))
        entry = states.get(name) or {}
        state = entry.get("state") or {}
        finished = "terminated" in state or bool(entry.get("lastState", {}).get("terminated"))
        started = finished or "running" in state
        out.append((name, started, finished))
    return out


def waiting_reasons(pod: Mapping[str, Any]) -> list[str]:
    """Why containers wait, when it is not the normal start (an image pull failing, …)."""
    status = pod.get("status") or {}
    out = []
    for entry in [*(status.get("initContainerStatuses") or []),
                  *(status.get("containerStatuses") or [])]:  # fmt: skip
        waiting = (entry.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason and reason not in NORMAL_WAITING:
            message = f": {waiting['message']}" if waiting.get("message") else ""
            out.append(f"{entry.get('name')} is waiting: {reason}{message}")
    return out


def pod_ended(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ENDED


def header(container: str) -> str:
    return f"==> {container} <=="


def print_all(pod: Mapping[str, Any], read: Callable[[str], str],
              out: Callable[[str], None]) -> int:  # fmt: skip
    """Every started container's whole log under a header; the count of containers shown."""
    shown = 0
    for name, started, _ in containers(pod):
        if not started:
            continue
        text = read(name)
        out(header(name) + "\n" + text + ("" if not text or text.endswith("\n") else "\n"))
        shown += 1
    return shown


@dataclass
class Follower:
    """What has been printed so far, per container (logs only grow while a pod runs)."""

    printed: dict[str, int] = field(default_factory=dict)

    def tick(self, pod: Mapping[str, Any], read: Callable[[str], str],
             out: Callable[[str], None]) -> None:  # fmt: skip
        for name, started, _ in containers(pod):
            if not started:
                continue
            text = read(name)
            done = self.printed.get(name)
            if done is None:
                out(header(name) + "\n")
                done = 0
            if len(text) > done:
                out(text[done:])
            self.printed[name] = max(done, len(text))


def follow(
    fetch_pod: Callable[[], Mapping[str, Any] | None],
    read: Callable[[Mapping[str, Any], str], str],
    out: Callable[[str], None],
    *,
    note: Callable[[str], None] = lambda _line: None,
    poll: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any] | None:
    """Print new log text (and, through `note`, why a container waits when that is not the
    normal start) until the pod has ended (its last lines are read after the ended
    status is seen); return the last pod seen (None when it went away)."""
    follower, noted = Follower(), set()
    while True:
        pod = fetch_pod()
        if pod is None:
            return None
        for line in waiting_reasons(pod):
            if line not in noted:  # each reason once (kubelet back-off repeats it)
                noted.add(line)
                note(line)
        follower.tick(pod, functools.partial(read, pod), out)
        if pod_ended(pod):
            return pod
        sleep(poll)
