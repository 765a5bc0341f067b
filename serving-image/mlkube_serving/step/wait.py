"""Wait for the user's `main` container to end, from the files its wrapper shell writes.

The wrapper (pipeline_contract.WRAPPER) writes its pid to <run>/main.pid, then, when the command
ends, its exit code to <run>/exit-code. The pod shares one process namespace, so `outputs` can
tell the shell is gone without an exit code (SIGKILL: OOM, deadline, deletion) from the pid.
Polling a file every 0.2 s costs nothing next to a training step and needs no inotify.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from mlkube.builders.pipeline_contract import StepPaths

POLL_SECONDS = 0.2


def wait_for_main(
    paths: StepPaths,
    poll: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """The exit code of `main`'s command, or None when its shell died before writing it."""
    while True:
        code = read_int(paths.exit_code_file)
        if code is not None:
            return code
        pid = read_int(paths.pid_file)
        if pid is not None and not alive(pid):
            # The shell writes exit-code before it exits: read once more after seeing it gone.
            return read_int(paths.exit_code_file)
        sleep(poll)


def read_int(path: str) -> int | None:
    """The integer in a small file; None while it is absent, empty or being written."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(64).strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (exited, not yet reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, under another user (main's image may run as a different uid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return True  # no procfs: trust kill(0)
    state = stat.rpartition(b")")[2].split()[:1]  # the command name may contain ") "
    return state not in ([b"Z"], [b"X"])
