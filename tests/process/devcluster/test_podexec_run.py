"""One pod's processes under the dev pod executor, without an API server: real processes for
init and main containers, a shared emptyDir, exit codes and termination messages, a failing
init container that stops the pod, leftovers swept when a container's main process exits,
stopping a running pod kills its whole process group; and a pipeline step pod (docs/pipelines.md
§2): `main` in the /bin/sh wrapper and `outputs` running side by side."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlkube.devcluster.podexec_run import PodRun, start_pod
from support.podexec import step_pod_spec


def no_objects(kind: str, name: str) -> Mapping[str, str] | None:
    return None


def pod(
    containers: list[dict[str, Any]], inits: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
        "spec": {"restartPolicy": "Never", "nodeName": "kwok-0",
                 "initContainers": inits or [], "containers": containers,
                 "volumes": [{"name": "shared", "emptyDir": {}}]},
    }  # fmt: skip


def py(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": ["python", "-c", code],
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}], **extra}  # fmt: skip


def run_to_end(run: PodRun, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while run.phase not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, run.states
        run.poll("t")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ")[1][0] != "Z"


def test_init_then_main_share_a_volume_and_report_exit_codes(tmp_path: Path) -> None:
    init = py("init", "open('/shared/x', 'w').write('hello')")
    code = ("import sys; m = open('/shared/x').read();"
            "open('/dev/termination-log', 'w').write(m + ' done'); sys.exit(7)")  # fmt: skip
    main = py("main", code)
    run = start_pod(pod([main], [init]), tmp_path, no_objects, "t0")
    assert run.phase == "Pending" and list(run.procs) == ["init"]
    run_to_end(run)
    assert run.phase == "Failed" and run.exit_codes() == {"init": 0, "main": 7}
    status = run.status("t1")["status"]
    state = status["containerStatuses"][0]["state"]["terminated"]
    assert state["message"] == "hello done" and state["reason"] == "Error"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    run.close()
    root = tmp_path / "pods" / "ns_p_u-1"
    assert not (root / "volumes").exists() and (root / "main" / "termination-log").exists()


def test_a_failing_init_container_fails_the_pod_before_main_runs(tmp_path: Path) -> None:
    run = start_pod(pod([py("main", "print('never')")], [py("init", "raise SystemExit(3)")]),
                    tmp_path, no_objects, "t0")  # fmt: skip
    run_to_end(run)
    assert run.phase == "Failed" and run.exit_codes() == {"init": 3}
    main = run.status("t1")["status"]["containerStatuses"][0]
    assert main["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_leftovers_are_swept_and_stopping_kills_the_group(tmp_path: Path) -> None:
    # The main process exits at once, leaving a child behind in its group: swept.
    spawner = ("import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', "
               "'import time; time.sleep(300)']); print(c.pid, flush=True)")  # fmt: skip
    run = start_pod(pod([py("main", spawner)]), tmp_path, no_objects, "t0")
    run_to_end(run)
    assert run.phase == "Succeeded"
    child = int((tmp_path / "pods" / "ns_p_u-1" / "main" / "0.log").read_text().split()[0])
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)

    sleeper = pod([py("main", "import time; time.sleep(300)")])
    sleeper["metadata"]["uid"] = "u-2"
    run = start_pod(sleeper, tmp_path, no_objects, "t0")
    pid = run.procs["main"].pid
    assert run.alive()
    run.signal_all(signal.SIGTERM)
    run.wait_all(5)
    run.poll("t1", killed=True)
    assert not alive(pid) and run.phase == "Failed"
    assert run.exit_codes() == {"main": 143}


def step_pod(uid: str, main_code: str) -> dict[str, Any]:
    spec = {**step_pod_spec(["python", "-c", main_code]), "nodeName": "kwok-0"}
    return {"metadata": {"name": "step", "namespace": "ns", "uid": uid}, "spec": spec}


MAIN_OK = """
import os, sys
open(os.environ["MLKUBE_OUTPUTS"] + "/model/model.bin", "w").write("m")
print("main python", os.getpid(), os.getppid(), sys.executable, flush=True)
"""


def test_a_step_pod_runs_main_in_the_shell_wrapper_beside_outputs(tmp_path: Path) -> None:
    run = start_pod(step_pod("u-s", MAIN_OK), tmp_path, no_objects, "t0")
    assert list(run.procs) == ["inputs"] and run.phase == "Pending"
    deadline = time.monotonic() + 30
    while list(run.procs) != ["main", "outputs"]:  # both at once once `inputs` is done
        assert time.monotonic() < deadline and run.phase == "Pending", run.states
        run.poll("t1")
        time.sleep(0.02)
    assert run.phase == "Running"
    run_to_end(run)
    assert run.phase == "Succeeded", run.states
    assert run.exit_codes() == {"inputs": 0, "main": 0, "outputs": 0}
    root = tmp_path / "pods" / "ns_step_u-s"
    _, _, pid, ppid, python = (root / "main" / "0.log").read_text().split()
    # The wrapped `python` is this interpreter, found through the shims by the real /bin/sh,
    # whose pid the wrapper wrote (the script's paths were mapped to the pod's directories).
    assert python == sys.executable
    assert (root / "main" / "0.log").read_text().count("main python") == 1
    run_dir = root / "volumes" / "mlkube-run"
    assert (run_dir / "main.pid").read_text().strip() == ppid != str(os.getpid())
    assert run.ids["main"] == f"local://{ppid}" and int(pid) != int(ppid)
    assert (run_dir / "exit-code").read_text().strip() == "0"
    status = run.status("t2")["status"]
    outputs = status["containerStatuses"][1]["state"]["terminated"]
    assert json.loads(outputs["message"]) == {"exitCode": 0, "files": ["model.bin"]}


def test_a_failing_main_fails_the_pod_with_its_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('step says', flush=True); print('why', file=sys.stderr); sys.exit(4)"
    run = start_pod(step_pod("u-f", code), tmp_path, no_objects, "t0")
    run_to_end(run)
    assert run.phase == "Failed" and run.exit_codes() == {"inputs": 0, "main": 4, "outputs": 0}
    main, outputs = (
        s["state"]["terminated"] for s in run.status("t")["status"]["containerStatuses"]
    )
    assert main["reason"] == "Error" and main["message"].splitlines() == ["step says", "why"]
    assert outputs["reason"] == "Completed" and json.loads(outputs["message"]) == {"exitCode": 4}


def test_stopping_a_step_pod_kills_both_containers(tmp_path: Path) -> None:
    run = start_pod(step_pod("u-k", "import time; time.sleep(300)"), tmp_path, no_objects, "t0")
    deadline = time.monotonic() + 30
    while list(run.procs) != ["main", "outputs"]:
        assert time.monotonic() < deadline, run.states
        run.poll("t1")
        time.sleep(0.02)
    pids = [p.pid for p in run.procs.values()]
    run.signal_all(signal.SIGTERM)
    run.wait_all(5)
    run.poll("t2", killed=True)
    assert not any(alive(p) for p in pids) and run.phase == "Failed"
    assert run.exit_codes() == {"inputs": 0, "main": 143, "outputs": 143}
