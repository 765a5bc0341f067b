"""The dev pod executor runs pipeline step pods (docs/pipelines.md §2) under the REAL Job
controller: init container `inputs`, then `main` (a python command in the contract's /bin/sh
wrapper) and `outputs` side by side, with kubelet-like phases and per-container statuses, logs
of each container through the API, a failing main failing the pod with its log tail, and both
containers' processes killed when the Job is deleted (a run cancelled) or runs past its
activeDeadlineSeconds (the Job controller deletes the pod); last, the real step programs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.pipeline_contract import (
    ENV_STEP,
    ENV_STEP_ROOT,
    STEP_ROOT,
    StepInput,
    StepManifest,
    StepOutput,
    main_command,
)
from mlkube.builders.pipeline_summary import parse_summary
from mlkube.cli.batch_api import pod_logs
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.podexec import POD_ANNOTATIONS, PodExecutor, escaped, job_condition, step_pod_spec
from support.waiting import wait_for

pytestmark = pytest.mark.integration

# main waits for a file the test drops into the pod's run volume, so the test sees both
# containers running at once; then it writes its artifact and a log line.
MAIN_OK = """
import os, time
print("main pid", os.getpid(), flush=True)
while not os.path.exists("/mlkube/run/go"):
    time.sleep(0.05)
open(os.environ["MLKUBE_OUTPUTS"] + "/model/model.bin", "w").write("weights")
print("trained", flush=True)
"""
MAIN_FAILS = """
import sys
for i in range(100):
    print("epoch", i)
sys.stdout.flush()  # before stderr: the log is one file
print("loss is nan", file=sys.stderr)
sys.exit(3)
"""
MAIN_HANGS = """
import os, time
print("main pid", os.getpid(), flush=True)
time.sleep(600)
"""


def step_job(name: str, main_code: str, **spec: Any) -> dict[str, Any]:
    pod = step_pod_spec(["python", "-c", main_code])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, **spec, "template": {
                "metadata": {"annotations": POD_ANNOTATIONS}, "spec": pod}}}  # fmt: skip


def job_pod(kube: Kube, namespace: str, job: str) -> dict[str, Any] | None:
    pods = kube.list("v1", "Pod", namespace, label_selector=f"batch.kubernetes.io/job-name={job}")
    return pods[0] if pods else None


def states(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s["state"] for s in pod["status"].get("containerStatuses") or []}


def both_running(kube: Kube, namespace: str, job: str) -> dict[str, Any] | None:
    pod = job_pod(kube, namespace, job)
    if not pod or (pod.get("status") or {}).get("phase") != "Running":
        return None
    s = states(pod)
    return pod if all("running" in s.get(c, {}) for c in ("main", "outputs")) else None


def pids(executor: PodExecutor, namespace: str, pod: str) -> list[int] | None:
    """main's python, main's shell (main.pid) and outputs' python, once all are written."""
    root = executor.pod_dirs(namespace, pod)[-1]
    main_log, out_log = (root / c / "0.log" for c in ("main", "outputs"))
    shell = root / "volumes" / "mlkube-run" / "main.pid"
    found = [_pid(main_log, "main pid"), _pid(shell, ""), _pid(out_log, "outputs pid")]
    return [p for p in found if p] if all(found) else None


def _pid(path: Path, prefix: str) -> int | None:
    text = path.read_text() if path.exists() else ""
    line = next((x for x in text.splitlines() if x.startswith(prefix) and x.strip()), "")
    return int(line.split()[-1]) if line.strip() else None


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_step_pod_runs_main_and_outputs_side_by_side(
    kube: Kube, namespace: str, pod_executor: PodExecutor
) -> None:
    kube.create({**step_job("ok", MAIN_OK), "metadata": {"name": "ok", "namespace": namespace}})
    pod = wait_for(lambda: both_running(kube, namespace, "ok"), 60, 0.2, "main and outputs")
    name = pod["metadata"]["name"]
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert all(s["ready"] and s["started"] for s in pod["status"]["containerStatuses"])
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    root = pod_executor.pod_dirs(namespace, name)[-1]
    (root / "volumes" / "mlkube-run" / "go").write_text("")
    cond = wait_for(lambda: job_condition(kube, namespace, "ok"), 60, 0.2, "Job ok finished")
    assert cond["type"] == "Complete", (cond, pod_executor.output())
    pod = job_pod(kube, namespace, "ok") or {}
    assert pod["status"]["phase"] == "Succeeded"
    main, outputs = states(pod)["main"]["terminated"], states(pod)["outputs"]["terminated"]
    assert main["exitCode"] == outputs["exitCode"] == 0
    assert main["reason"] == outputs["reason"] == "Completed" and "message" not in main
    # outputs saw main's exit code (the wrapper's file) and main's artifact: its summary is its
    # termination message, as `python -m mlkube_serving step outputs` reports it.
    assert json.loads(outputs["message"]) == {"exitCode": 0, "files": ["model.bin"]}
    assert outputs["finishedAt"] >= main["finishedAt"] >= main["startedAt"]
    assert not any(s["ready"] for s in pod["status"]["containerStatuses"])
    # Each container's log through the API server, as `kubectl logs POD -c NAME` reads it.
    assert pod_logs(kube, namespace, name, "main").splitlines()[1:] == ["trained"]
    assert pod_logs(kube, namespace, name, "outputs").splitlines()[1:] == ["outputs saw 0"]
    assert pod_logs(kube, namespace, name, "inputs") == "inputs ready\n"


def test_a_failing_main_fails_the_pod_with_its_log_tail(
    kube: Kube, namespace: str, pod_executor: PodExecutor
) -> None:
    kube.create(
        {**step_job("bad", MAIN_FAILS), "metadata": {"name": "bad", "namespace": namespace}}
    )
    cond = wait_for(lambda: job_condition(kube, namespace, "bad"), 60, 0.2, "Job bad finished")
    assert cond["type"] == "Failed", cond
    pod = job_pod(kube, namespace, "bad") or {}
    assert pod["status"]["phase"] == "Failed"
    main, outputs = states(pod)["main"]["terminated"], states(pod)["outputs"]["terminated"]
    assert main["exitCode"] == 3 and main["reason"] == "Error"
    # FallbackToLogsOnError: the last 80 lines of the log (stderr included).
    lines = main["message"].splitlines()
    assert lines[-1] == "loss is nan" and lines[0] == "epoch 21" and len(lines) == 80
    assert outputs["exitCode"] == 0 and json.loads(outputs["message"]) == {"exitCode": 3}


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_deleting_a_running_step_pod_kills_both_containers(
    kube: Kube, namespace: str, pod_executor: PodExecutor, how: str
) -> None:
    """cancel: the run deletes the Job (propagation Background: the garbage collector deletes
    the pod); deadline: the Job controller deletes the pod past activeDeadlineSeconds (set
    once both containers run, so a slow start cannot beat it)."""
    job = f"hang-{how}"
    kube.create({**step_job(job, MAIN_HANGS), "metadata": {"name": job, "namespace": namespace}})
    pod = wait_for(lambda: both_running(kube, namespace, job), 60, 0.2, "main and outputs")
    name = pod["metadata"]["name"]
    found = wait_for(lambda: pids(pod_executor, namespace, name), 30, 0.2, "the pids")
    assert len(found) == 3 and all(alive(p) for p in found)
    if how == "cancel":
        kube.delete("batch/v1", "Job", job, namespace, propagation="Background")
    else:
        kube.patch("batch/v1", "Job", job, {"spec": {"activeDeadlineSeconds": 1}}, namespace)
        cond = wait_for(lambda: job_condition(kube, namespace, job), 30, 0.2, "deadline")
        assert cond["type"] == "Failed" and cond["reason"] == "DeadlineExceeded", cond
    wait_for(lambda: not any(alive(p) for p in found), 30, 0.2, "every process killed")
    wait_for(lambda: job_pod(kube, namespace, job) is None, 30, 0.2, "the pod deleted")
    log = pod_executor.output()
    assert f"{namespace}/{name}: deleted, stopping" in log, log


# The real thing: pipeline_contract's wrapper (escaped as a pod spec carries it), and the real
# `python -m mlkube_serving step inputs|outputs` over a file:// store on this machine.
TRAIN = """
import json, os, pathlib
rows = len((pathlib.Path(os.environ["MLKUBE_INPUT_DATA"]) / "a.csv").read_text().splitlines())
model = pathlib.Path(os.environ["MLKUBE_OUTPUT_MODEL"])
(model / "w.bin").write_bytes(bytes(range(256)) * 4)
pathlib.Path(os.environ["MLKUBE_OUTPUT_SCORES"]).write_text(json.dumps({"rows": rows}))
print("trained on", rows, "rows", flush=True)
"""


def real_step_job(name: str, manifest: StepManifest) -> dict[str, Any]:
    job = step_job(name, "")
    spec = job["spec"]["template"]["spec"]
    # The pod's STEP_ROOT: a no-op on a node; here the executor maps /mlkube to a directory
    # of links to the three volumes, so the mlkube programs find inputs/, outputs/, run/.
    root = [{"name": ENV_STEP_ROOT, "value": STEP_ROOT}]
    mlkube = [*root, {"name": ENV_STEP, "value": manifest.to_json()}]
    step = ["python", "-m", "mlkube_serving", "step"]
    spec["initContainers"][0].update(command=[*step, "inputs"], env=mlkube)
    main, outputs = spec["containers"]
    command = escaped(main_command(["python", "-c", TRAIN]))  # as the pod spec carries it
    main.update(command=command, env=[*root, *({"name": k, "value": v} for k, v in
                                               manifest.env().items())])  # fmt: skip
    outputs.update(command=[*step, "outputs"], env=mlkube)
    return job


def test_the_real_step_programs_and_wrapper(
    kube: Kube, namespace: str, pod_executor: PodExecutor, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x,y\n1,2\n3,4\n")
    data_uri = f"file://{data}"
    prefix = f"file://{tmp_path}/store/{namespace}/pipelineruns/r1/train/a1"
    manifest = StepManifest(
        run="r1", step="train", attempt=1, prefix=prefix,
        inputs=(StepInput("data", data_uri, compute_digest(data_uri).digest),),
        outputs=(StepOutput("model"), StepOutput("scores", "metrics")),
    )  # fmt: skip
    job = real_step_job("real", manifest)
    kube.create({**job, "metadata": {"name": "real", "namespace": namespace}})
    cond = wait_for(lambda: job_condition(kube, namespace, "real"), 90, 0.3, "Job real finished")
    pod = job_pod(kube, namespace, "real") or {}
    name = pod["metadata"]["name"]
    logs = {
        c: pod_executor.container_log(namespace, name, c) for c in ("inputs", "main", "outputs")
    }
    assert cond["type"] == "Complete", (cond, pod.get("status"), logs, pod_executor.output())
    inputs = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert json.loads(inputs["message"])["inputs"][0]["digest"] == manifest.inputs[0].digest
    main, outputs = states(pod)["main"]["terminated"], states(pod)["outputs"]["terminated"]
    assert (main["exitCode"], outputs["exitCode"]) == (0, 0)
    summary = parse_summary(outputs["message"])
    assert summary.exit_code == 0 and summary.metrics == {"rows": 3.0}
    model = summary.output("model")
    assert model is not None and model.uri == f"{prefix}/outputs/model"
    assert model.digest == compute_digest(model.uri).digest and model.size == 1024
    stored = Path(f"{tmp_path}/store/{namespace}/pipelineruns/r1/train/a1/_mlkube/summary.json")
    assert parse_summary(stored.read_text()) == summary
    assert pod_logs(kube, namespace, name, "main") == logs["main"] == "trained on 3 rows\n"
