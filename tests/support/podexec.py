"""The dev pod executor (mlkube.devcluster.podexec) as a real process beside the integration
control plane: pods annotated with POD_ANNOTATIONS run as local processes, so the real Job
controller sees real exit codes and termination messages (contract C2 of issue 11)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlkube.devcluster import podexec

# What a pod template needs to be run by the executor (and left alone by kwok), and the
# operator setting that puts it on batch pods (MLKUBE_BATCH_POD_ANNOTATIONS), as in `make dev`.
POD_ANNOTATIONS = podexec.POD_ANNOTATIONS
POD_ANNOTATIONS_ENV = podexec.POD_ANNOTATIONS_SETTING


@dataclass
class PodExecutor:
    work_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def pod_dirs(self, namespace: str, pod: str) -> list[Path]:
        """`<work>/pods/<namespace>_<pod>_<uid>/` (one per pod incarnation of that name)."""
        return sorted((self.work_dir / "pods").glob(f"{namespace}_{pod}_*"))

    def container_log(self, namespace: str, pod: str, container: str) -> str:
        dirs = self.pod_dirs(namespace, pod)
        return (dirs[-1] / container / "0.log").read_text() if dirs else ""

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def run_pod_executor(
    kubeconfig: Path, work_dir: Path, concurrency: int = 2
) -> Iterator[PodExecutor]:
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / "podexec.log"
    argv = [*podexec.executor_argv(kubeconfig, work_dir, concurrency), "--poll", "0.2"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
                                start_new_session=True)  # fmt: skip
    executor = PodExecutor(work_dir, log, proc)
    try:
        yield executor
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
