"""One pod's processes under the dev pod executor (see podexec.py): prepare its directories,
start init containers one after the other and then all the containers at once (a pipeline
step's `main` and `outputs` run side by side), record how each ended: the pod runs while any
container runs, and fails if any of them failed.

Every container is a process group of its own (new session), so stopping it — or sweeping
up the workers it left behind when its main process exits, as a container's cgroup would be
— is one killpg. Children also die with the executor (PR_SET_PDEATHSIG) if it is killed
outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from mlkube.devcluster import podexec_status as st
from mlkube.devcluster.podexec_command import shim_dir, shims
from mlkube.devcluster.podexec_logs import LogMirror
from mlkube.devcluster.podexec_spec import (
    ContainerRun,
    Lookup,
    NotYet,
    Refused,
    container_run,
    pod_dir,
    safe_relative,
    volume_dirs,
    volume_files,
)

# What a "container" inherits from the executor: enough to find programs and this venv's
# packages, never the executor's credentials (pods get secrets only from Secrets).
PASS_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ")
LOG_TAIL_READ = 64 * 1024
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start_pod(pod: dict[str, Any], work_dir: Path, lookup: Lookup, t: str) -> PodRun:
    """Check everything first (Refused/NotYet leave no trace), then lay out the pod's
    directories and start its first container."""
    spec = pod["spec"]
    if spec.get("restartPolicy", "Always") != "Never":
        raise Refused("the dev pod executor runs only pods with restartPolicy: Never")
    root = pod_dir(work_dir, pod)
    dirs = volume_dirs(pod, root)
    files: dict[str, dict[str, bytes]] = {}
    for vol in spec.get("volumes") or []:
        found = volume_files(vol, lookup)
        if found is None:
            raise NotYet(f"volume {vol['name']!r}: its Secret/ConfigMap (or a key) is missing")
        files[vol["name"]] = found
    base = {k: os.environ[k] for k in PASS_ENV if k in os.environ}

    def build(c: Mapping[str, Any]) -> ContainerRun:
        if c.get("restartPolicy"):
            raise Refused(f"container {c['name']!r}: sidecar containers are not supported")
        return container_run(c, pod, root, dirs, lookup, sys.executable, base)

    inits = [build(c) for c in spec.get("initContainers") or []]
    mains = [build(c) for c in spec["containers"]]
    for name, directory in dirs.items():
        directory.mkdir(parents=True, exist_ok=True)
        for rel, data in files[name].items():
            target = directory / safe_relative(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o600)
    for c in inits + mains:
        for link, target in c.links.items():  # mount points under parents made up here
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(target)
        c.log.parent.mkdir(parents=True, exist_ok=True)
        c.termination.write_text("")  # exists, as /dev/termination-log does in a container
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    shim_dir(root).mkdir(parents=True, exist_ok=True)
    for name, text in shims(sys.executable).items():
        (shim_dir(root) / name).write_text(text)
        (shim_dir(root) / name).chmod(0o755)
    return PodRun(pod, root, inits, mains, t)


class PodRun:
    def __init__(
        self,
        pod: dict[str, Any],
        root: Path,
        inits: list[ContainerRun],
        mains: list[ContainerRun],
        t: str,
    ) -> None:
        self.pod, self.root, self.inits, self.mains = pod, root, inits, mains
        self.start_time = t
        self.stage = 0  # index of the running init container; len(inits): the containers
        self.phase = "Pending"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.ids: dict[str, str] = {}
        self.kill_deadline: float | None = None
        self.dirty = True  # status not written since it changed
        self.started = time.monotonic()
        self.reason = self.message = ""  # the pod's own (DeadlineExceeded)
        # CRI copies of the raw logs, which kwok serves (podexec_logs).
        self.mirrors = {c.name: LogMirror(c.log) for c in inits + mains}
        self._launch(t)

    # -- processes -----------------------------------------------------------------------
    def _launch(self, t: str) -> None:
        if self.stage < len(self.inits):
            self._spawn(self.inits[self.stage], t)
            return
        self.phase = "Running"
        for c in self.mains:
            self._spawn(c, t)
        if not self.procs:  # every container failed to start
            self.phase = "Failed"

    def _spawn(self, c: ContainerRun, t: str) -> None:
        log: IO[bytes]
        with open(c.log, "ab") as log:
            try:
                proc = subprocess.Popen(
                    c.argv, env=c.env, cwd=c.cwd, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
                )  # fmt: skip
            except OSError as err:
                self.states[c.name] = st.terminated(128, t, t, f"cannot start: {err}", "StartError")
                if self.stage < len(self.inits):
                    self.phase = "Failed"
                return
        self.procs[c.name] = proc
        self.ids[c.name] = f"local://{proc.pid}"
        self.states[c.name] = st.running(t)

    def _record(self, c: ContainerRun, returncode: int, t: str) -> int:
        code = st.exit_code(returncode)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.procs[c.name].pid, signal.SIGKILL)  # what it left behind
        self.mirrors[c.name].pump(final=True)  # its log is whole before its status says ended
        text = c.termination.read_text(errors="replace") if c.termination.exists() else ""
        with open(c.log, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_READ))
            tail = log.read()
        started = self.states[c.name]["running"]["startedAt"]
        message = st.termination_message(text, tail, code, c.fallback_to_logs)
        self.states[c.name] = st.terminated(code, started, t, message)
        return code

    def poll(self, t: str, killed: bool = False) -> bool:
        """Record processes that ended and move on; True when the status changed."""
        by_name = {c.name: c for c in self.inits + self.mains}
        ended = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        codes = {n: self._record(by_name[n], rc, t) for n, rc in ended.items()}
        for name in ended:
            del self.procs[name]
        if killed:
            self.phase = "Failed"
            return True
        if not ended:
            return False
        if self.stage < len(self.inits):
            if codes.get(self.inits[self.stage].name, 0) != 0:
                self.phase = "Failed"  # restartPolicy Never: the pod fails with its init
            else:
                self.stage += 1
                self._launch(t)
        elif not self.procs:
            ok = all(self.states[c.name]["terminated"]["exitCode"] == 0 for c in self.mains)
            self.phase = "Succeeded" if ok else "Failed"
        return True

    def pump_logs(self) -> None:
        """Copy the running containers' new complete log lines for kwok (each tick)."""
        for name in self.procs:
            self.mirrors[name].pump()

    def log_files(self) -> dict[str, str]:
        """container -> its CRI log (what the pod's kwok Logs object names)."""
        return {name: str(m.cri) for name, m in self.mirrors.items()}

    def signal_all(self, sig: int) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs.values())

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        """The pod is done here: volumes go (a kubelet tears them down too, and secret volumes
        hold credentials); logs and termination files stay."""
        shutil.rmtree(self.root / "volumes", ignore_errors=True)
        shutil.rmtree(self.root / ".fs", ignore_errors=True)  # links into the volumes

    # -- status --------------------------------------------------------------------------
    def current_names(self) -> list[str]:
        return list(self.procs)

    def exit_codes(self) -> dict[str, int]:
        return {n: s["terminated"]["exitCode"] for n, s in self.states.items() if "terminated" in s}

    def age(self) -> float:
        return time.monotonic() - self.started

    def status(self, t: str, message: str = "") -> dict[str, Any]:
        spec = self.pod["spec"]

        def one(c: Mapping[str, Any]) -> dict[str, Any]:
            state = self.states.get(c["name"]) or st.waiting("PodInitializing")
            return st.container_status(c, state, self.ids.get(c["name"], ""))

        inits = [one(c) for c in spec.get("initContainers") or []]
        mains = [one(c) for c in spec["containers"]]
        return st.pod_status(self.pod, self.phase, inits, mains, t, self.start_time,
                             message or self.message, self.reason)  # fmt: skip
