"""The dev pod executor (mlkube.devcluster.podexec) as a real process beside the integration
control plane: pods annotated with POD_ANNOTATIONS run as local processes, so the real Job
controller sees real exit codes and termination messages (contract C2 of issue 11)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkube.builders.pipeline_contract import main_command
from mlkube.devcluster import podexec
from mlkube.handlers.config import operator_config
from mlkube.k8s import Kube
from support.operator import patched_env, stop_process

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
        stop_process(proc, 15)


# The pipeline step wrapper (docs/pipelines.md §2, pipeline_contract.WRAPPER) reaches a pod
# spec with every `$` doubled: the kubelet expands `$$` to `$` in command and args. Its root is
# `${MLKUBE_STEP_ROOT:-/mlkube}`; these pods leave MLKUBE_STEP_ROOT unset on main, so the
# executor's mapping of `/mlkube` inside the script is what finds the run volume.
STEP_VOLUMES = {"mlkube-inputs": "/mlkube/inputs", "mlkube-outputs": "/mlkube/outputs",
                "mlkube-run": "/mlkube/run"}  # fmt: skip
# A stand-in for `python -m mlkube_serving step outputs`: waits for main's exit code (or for
# main's shell to be gone), then writes a summary to its termination log and exits 0.
FAKE_OUTPUTS = """
import json, os, time
print("outputs pid", os.getpid(), flush=True)
while True:
    if os.path.exists("/mlkube/run/exit-code"):
        code = int(open("/mlkube/run/exit-code").read())
        break
    pid = ""
    if os.path.exists("/mlkube/run/main.pid"):
        pid = open("/mlkube/run/main.pid").read().strip()
    if pid and not os.path.exists("/proc/" + pid):
        code = None
        break
    time.sleep(0.05)
summary = {"exitCode": code}
if code == 0:
    summary["files"] = sorted(os.listdir("/mlkube/outputs/model"))
open("/dev/termination-log", "w").write(json.dumps(summary))
print("outputs saw", code, flush=True)
"""


def k8s_escape(text: str) -> str:
    return text.replace("$", "$$")


def escaped(command: list[str]) -> list[str]:
    """pipeline_contract.main_command's argv as a pod spec carries it (the script escaped)."""
    return [*command[:2], k8s_escape(command[2]), *command[3:]]


def step_pod_spec(main: list[str], outputs: list[str] | None = None) -> dict[str, Any]:
    """A pipeline step pod (docs/pipelines.md §2) whose `main` runs the python command `main`
    (e.g. ["python", "-c", CODE]) in the wrapper; `inputs` makes the `model` output directory."""
    mounts = [{"name": n, "mountPath": p} for n, p in STEP_VOLUMES.items()]
    inputs = "import os; os.makedirs('/mlkube/outputs/model'); print('inputs ready')"
    return {
        "restartPolicy": "Never",
        "shareProcessNamespace": True,
        "automountServiceAccountToken": False,
        "volumes": [{"name": n, "emptyDir": {}} for n in STEP_VOLUMES],
        "initContainers": [{"name": "inputs", "image": "mlkube-serving",
                            "command": ["python", "-c", inputs], "volumeMounts": mounts}],
        "containers": [
            {"name": "main", "image": "user-image",
             "command": [*escaped(main_command(main))],
             "env": [{"name": "MLKUBE_OUTPUTS", "value": "/mlkube/outputs"}],
             "volumeMounts": mounts, "terminationMessagePolicy": "FallbackToLogsOnError"},
            {"name": "outputs", "image": "mlkube-serving",
             "command": outputs or ["python", "-c", FAKE_OUTPUTS], "volumeMounts": mounts},
        ],
    }  # fmt: skip


@contextlib.contextmanager
def executor_store(root: Path) -> Iterator[Path]:
    """The operator annotates step pods for the executor and writes to a file:// store at
    `root` (created); its settings are read afresh inside and after."""
    root.mkdir()
    operator_config.cache_clear()
    env = {"MLKUBE_BATCH_POD_ANNOTATIONS": POD_ANNOTATIONS_ENV,
           "MLKUBE_ARTIFACT_STORE": root.as_uri()}  # fmt: skip
    with patched_env(env):
        yield root
    operator_config.cache_clear()


def job_condition(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The Job's Complete or Failed condition once it finished, None before."""
    obj = kube.get("batch/v1", "Job", name, namespace) or {}
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return dict(cond)
    return None
