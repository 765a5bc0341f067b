"""The dev pod executor (mlkube.devcluster.podexec) as a real process beside the integration
control plane: pods annotated with POD_ANNOTATIONS run as local processes, so the real Job
controller sees real exit codes and termination messages (contract C2 of issue 11)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# What a pod template needs to be run by the executor (and left alone by kwok): the same
# pair the dev cluster puts in MLKUBE_BATCH_POD_ANNOTATIONS.
POD_ANNOTATIONS = {"mlkube.dev/exec": "local", "kwok.x-k8s.io/status": "custom"}
POD_ANNOTATIONS_ENV = "mlkube.dev/exec=local,kwok.x-k8s.io/status=custom"


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
    argv = [sys.executable, "-m", "mlkube.devcluster.podexec", "--kubeconfig", str(kubeconfig),
            "--work-dir", str(work_dir), "--concurrency", str(concurrency),
            "--poll", "0.2"]  # fmt: skip
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
