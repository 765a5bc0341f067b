"""One pod's processes under the dev pod executor, without an API server: real processes for
init and main containers, a shared emptyDir, exit codes and termination messages, a failing
init container that stops the pod, leftovers swept when a container's main process exits, and
stopping a running pod kills its whole process group."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlkube.devcluster.podexec_run import PodRun, start_pod


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
