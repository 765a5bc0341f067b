"""The dev pod executor (contract C2) under the REAL Job controller: Indexed Jobs whose pods
run as local processes, with exit codes, termination messages, podFailurePolicy, suspend and
the refusal of anything that is not a python command."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli.batch_api import pod_logs
from mlkube.k8s import Kube
from support.podexec import POD_ANNOTATIONS, PodExecutor, job_condition
from support.waiting import wait_for

pytestmark = pytest.mark.integration

# Index 0 and 1 do different things; the program sees its index twice (the Job controller's
# JOB_COMPLETION_INDEX and our fieldRef), a Secret, and a file an init container wrote into a
# shared emptyDir. Paths inside the program are container paths the executor maps.
PROGRAM = """
import os, sys
i = int(os.environ["JOB_COMPLETION_INDEX"])
shared = open("/work/shared/hello").read()
msg = f"index={i} field={os.environ['MY_INDEX']} secret={os.environ['TOKEN']} shared={shared}"
print("log line of", i, flush=True)
if os.environ.get("EXIT_" + str(i)) == "logs":
    print("stderr says why", file=sys.stderr)
    sys.exit(3)
open("/dev/termination-log", "w").write(msg)
sys.exit(int(os.environ.get("EXIT_" + str(i), "0")))
"""
INIT = "open('/work/shared/hello', 'w').write('from-init')"


def job(name: str, env: dict[str, str], **spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "ignored:by-the-executor",
        "command": ["python", "-c", PROGRAM],
        "env": [
            {"name": "MY_INDEX", "valueFrom": {"fieldRef": {"fieldPath":
             "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            *({"name": k, "value": v} for k, v in env.items()),
        ],
        "volumeMounts": [{"name": "shared", "mountPath": "/work/shared"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }  # fmt: skip
    init = {"name": "init", "image": "ignored", "command": ["python", "-c", INIT],
            "volumeMounts": [{"name": "shared", "mountPath": "/work/shared"}]}  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": 2,
            "parallelism": 2,
            **spec,
            "template": {
                "metadata": {"annotations": POD_ANNOTATIONS},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "initContainers": [init],
                    "containers": [container],
                    "volumes": [{"name": "shared", "emptyDir": {}}],
                },
            },
        },
    }


def create(kube: Kube, namespace: str, obj: dict[str, Any]) -> None:
    kube.create({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})


@pytest.fixture
def creds(kube: Kube, namespace: str) -> None:
    token = base64.b64encode(b"s3cr3t").decode()
    create(kube, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                             "data": {"token": token}})  # fmt: skip


def pods_by_index(kube: Kube, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    pods = kube.list("v1", "Pod", namespace, label_selector=f"batch.kubernetes.io/job-name={name}")
    return {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
            for p in pods}  # fmt: skip


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_indexed_job_completes_with_messages(
    kube: Kube, namespace: str, creds: None, pod_executor: PodExecutor
) -> None:
    create(kube, namespace, job("ok", {}))
    cond = wait_for(lambda: job_condition(kube, namespace, "ok"), 90, 0.3, "Job ok finished")
    assert cond["type"] == "Complete", (cond, pod_executor.output())
    pods = pods_by_index(kube, namespace, "ok")
    for index in ("0", "1"):
        pod = pods[index]
        assert pod["status"]["phase"] == "Succeeded"
        state = terminated(pod)
        assert state["exitCode"] == 0 and state["reason"] == "Completed"
        assert state["message"] == f"index={index} field={index} secret=s3cr3t shared=from-init"
        init = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
        assert init["exitCode"] == 0
        name = pod["metadata"]["name"]
        assert f"log line of {index}" in pod_executor.container_log(namespace, name, "main")
        # ...and through the API, as `kubectl logs` / `mlkube batch jobs logs` read it: the
        # API server asks the node's "kubelet" (kwok), which serves the executor's file.
        assert pod_logs(kube, namespace, name, "main") == f"log line of {index}\n"
        assert pod_logs(kube, namespace, name, "init") == ""
        # Volumes (the secret's value could be in them) go with the pod's end; logs stay.
        assert not (pod_executor.pod_dirs(namespace, name)[-1] / "volumes").exists()


def test_exit_codes_fail_indexes_and_fall_back_to_logs(
    kube: Kube, namespace: str, creds: None, pod_executor: PodExecutor
) -> None:
    create(kube, namespace, job("bad", {"EXIT_1": "logs"}, backoffLimitPerIndex=0))
    cond = wait_for(lambda: job_condition(kube, namespace, "bad"), 90, 0.3, "Job bad finished")
    assert cond["type"] == "Failed" and cond["reason"] == "FailedIndexes", cond
    status = (kube.get("batch/v1", "Job", "bad", namespace) or {})["status"]
    assert status["completedIndexes"] == "0" and status["failedIndexes"] == "1"
    pods = pods_by_index(kube, namespace, "bad")
    assert terminated(pods["0"])["exitCode"] == 0
    failed = terminated(pods["1"])
    assert pods["1"]["status"]["phase"] == "Failed"
    assert failed["exitCode"] == 3 and failed["reason"] == "Error"
    # No termination file written: FallbackToLogsOnError gives the log's tail.
    assert failed["message"].splitlines() == ["log line of 1", "stderr says why"]


def test_pod_failure_policy_fails_the_job_on_an_exit_code(
    kube: Kube, namespace: str, creds: None, pod_executor: PodExecutor
) -> None:
    policy = {"rules": [{"action": "FailJob",
                         "onExitCodes": {"containerName": "main", "operator": "In",
                                         "values": [42]}}]}  # fmt: skip
    create(kube, namespace, job("policy", {"EXIT_1": "42"}, backoffLimit=6,
                                podFailurePolicy=policy))  # fmt: skip
    cond = wait_for(lambda: job_condition(kube, namespace, "policy"), 90, 0.3, "Job failed")
    assert cond["type"] == "Failed" and cond["reason"] == "PodFailurePolicy", cond
    assert "exit code 42" in cond["message"]
    failed = terminated(pods_by_index(kube, namespace, "policy")["1"])
    assert failed["exitCode"] == 42 and failed["message"].startswith("index=1 ")


SLEEPER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("pids", __import__("os").getpid(), child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_suspending_the_job_kills_its_processes(
    kube: Kube, namespace: str, pod_executor: PodExecutor
) -> None:
    spec = job("sleepy", {}, completions=1, parallelism=1)
    pod_spec = spec["spec"]["template"]["spec"]
    pod_spec["containers"][0].update(command=["python", "-c", SLEEPER], env=[])
    create(kube, namespace, spec)

    def pids() -> list[int] | None:
        pods = list(pods_by_index(kube, namespace, "sleepy").values())
        if not pods or pods[0]["status"].get("phase") != "Running":
            return None
        text = pod_executor.container_log(namespace, pods[0]["metadata"]["name"], "main")
        line = next((x for x in text.splitlines() if x.startswith("pids ")), None)
        return [int(p) for p in line.split()[1:]] if line else None

    found: list[int] = wait_for(pids, 60, 0.3, "the pod running with its child")
    assert all(alive(p) for p in found)
    kube.patch("batch/v1", "Job", "sleepy", {"spec": {"suspend": True}}, namespace)
    wait_for(lambda: not any(alive(p) for p in found), 30, 0.2, "processes killed")
    wait_for(lambda: not pods_by_index(kube, namespace, "sleepy"), 30, 0.3, "the pod deleted")


def test_a_command_that_is_not_python_fails_the_pod_with_a_message(
    kube: Kube, namespace: str, pod_executor: PodExecutor
) -> None:
    for name, command in (("shell", ["sh", "-c", "echo hi"]), ("image", None)):
        container = {
            "name": "main",
            "image": "busybox",
            **({"command": command} if command else {}),
        }
        create(kube, namespace, {"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": name, "annotations": POD_ANNOTATIONS},
                                 "spec": {"restartPolicy": "Never",
                                          "containers": [container]}})  # fmt: skip
    for name, shown in (("shell", "sh -c echo hi"), ("image", "(image entrypoint)")):

        def failed(name: str = name) -> dict[str, Any] | None:
            pod = kube.get("v1", "Pod", name, namespace) or {}
            return pod if pod.get("status", {}).get("phase") == "Failed" else None

        pod = wait_for(failed, 30, 0.2, f"pod {name} failed")
        message = pod["status"]["message"]
        assert "runs only `python` commands" in message and shown in message, message
        state = terminated(pod)
        assert state["reason"] == "StartError" and state["exitCode"] == 128


def test_a_pod_waits_for_its_secret_like_a_kubelet(
    kube: Kube, namespace: str, pod_executor: PodExecutor
) -> None:
    """No Secret yet: Pending with CreateContainerConfigError (not a failure); it runs once the
    Secret exists."""
    create(kube, namespace, job("late", {}, completions=1, parallelism=1))

    def waiting() -> str | None:
        pods = list(pods_by_index(kube, namespace, "late").values())
        statuses = pods[0].get("status", {}).get("containerStatuses") if pods else None
        state = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return state.get("message") if state.get("reason") == "CreateContainerConfigError" else None

    message = wait_for(waiting, 30, 0.2, "the pod waiting for its Secret")
    assert "secret 'creds'" in message
    assert pods_by_index(kube, namespace, "late")["0"]["status"]["phase"] == "Pending"
    token = base64.b64encode(b"late").decode()
    create(kube, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                             "data": {"token": token}})  # fmt: skip
    cond = wait_for(lambda: job_condition(kube, namespace, "late"), 60, 0.3, "Job late finished")
    assert cond["type"] == "Complete", cond
    assert "secret=late" in terminated(pods_by_index(kube, namespace, "late")["0"])["message"]


def test_a_pod_past_its_active_deadline_is_killed(
    kube: Kube, namespace: str, pod_executor: PodExecutor
) -> None:
    spec = job("slow", {}, completions=1, parallelism=1, backoffLimit=0)
    pod_spec = spec["spec"]["template"]["spec"]
    pod_spec["activeDeadlineSeconds"] = 2
    pod_spec["containers"][0].update(command=["python", "-c", "import time; time.sleep(300)"],
                                     env=[])  # fmt: skip
    create(kube, namespace, spec)
    cond = wait_for(lambda: job_condition(kube, namespace, "slow"), 60, 0.3, "Job slow failed")
    assert cond["type"] == "Failed", cond
    pod = pods_by_index(kube, namespace, "slow")["0"]
    assert pod["status"]["reason"] == "DeadlineExceeded", pod["status"]
    assert terminated(pod)["exitCode"] == 137
