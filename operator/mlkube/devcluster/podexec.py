"""The dev pod executor: in the kwok dev cluster, run pods annotated `mlkube.dev/exec: local`
as local processes, like a kubelet would (contract C2 of issue 11; docs/dev-cluster.md).

kwok fakes pods: they turn Running and complete without running anything, so a BatchJob's
scorer never runs in `make dev` or the integration tests. This process runs the pods that
ask for it (their pod template also carries `kwok.x-k8s.io/status: custom`, so kwok leaves
their status alone) once they are bound to a node: init containers in order, then all the
containers at once (a pipeline step's `main` beside `outputs`), each `python ...` command (bare
or in a `/bin/sh -c` wrapper, podexec_command) under this interpreter, with volumes as per-pod
directories (podexec_spec) and the status a kubelet writes (podexec_status), so the REAL Job
controller sees real exit codes and termination messages. Dev tooling only: it refuses an
API server off loopback, ignores images and enforces no resources.

One thread polls the API and the processes (no watch to resume, no locks); at most
`--concurrency` pods run at once, the rest wait Pending in creation order.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlkube.devcluster import podexec_status as st
from mlkube.devcluster.podexec_logs import expose_logs
from mlkube.devcluster.podexec_run import PodRun, start_pod
from mlkube.devcluster.podexec_spec import Lookup, NotYet, Refused, decode_data
from mlkube.k8s import ApiError, Kube

ANNOTATION = "mlkube.dev/exec"
VALUE = "local"
# What a pod needs to be run here and left alone by kwok (the dev cluster's operator puts them
# on batch pods: MLKUBE_BATCH_POD_ANNOTATIONS, contract C3).
POD_ANNOTATIONS = {ANNOTATION: VALUE, "kwok.x-k8s.io/status": "custom"}
POD_ANNOTATIONS_SETTING = ",".join(f"{k}={v}" for k, v in POD_ANNOTATIONS.items())
PROCESS = "podexec"  # its name among the dev cluster's processes (logs/podexec.log)
TERMINAL = ("Succeeded", "Failed")
RETRY_SECONDS = 5.0  # a pod waiting for a Secret/ConfigMap is tried again after this


def executor_argv(kubeconfig: Path, work_dir: Path, concurrency: int = 2) -> list[str]:
    return [sys.executable, "-m", "mlkube.devcluster.podexec", "--kubeconfig", str(kubeconfig),
            "--work-dir", str(work_dir), "--concurrency", str(concurrency)]  # fmt: skip


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_local(pod: dict[str, Any]) -> bool:
    annotations = pod["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION) == VALUE and bool(pod["spec"].get("nodeName"))


def loopback_server(kube: Kube) -> bool:
    host = urlsplit(str(kube.api.configuration.host)).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Executor:
    def __init__(self, kube: Kube, work_dir: Path, concurrency: int = 2) -> None:
        self.kube = kube
        self.work_dir = work_dir
        self.concurrency = concurrency
        self.runs: dict[str, PodRun] = {}
        self.finished: set[str] = set()  # uids run (or refused) here: never again
        self.retry_at: dict[str, float] = {}
        self.waiting_message: dict[str, str] = {}
        self.logs_unavailable = False  # said once: kwok's Logs CRD is missing
        self.stopping = False

    # -- the loop ----------------------------------------------------------------------
    def serve(self, poll: float = 0.5) -> None:
        while not self.stopping:
            try:
                self.tick()
            except ApiError as err:  # the API server restarting: keep the processes
                log(f"API error, retrying: {err}")
            except Exception:  # a bug must not orphan every running pod: log, go on
                log(f"unexpected error, retrying:\n{traceback.format_exc()}")
            time.sleep(poll)
        self.shutdown()

    def tick(self) -> None:
        pods = {p["metadata"]["uid"]: p for p in self.kube.list("v1", "Pod") if is_local(p)}
        for uid, run in list(self.runs.items()):
            pod = pods.get(uid)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                self.terminate(run, pod)
            else:
                run.pod = pod
                self.advance(run)
        for pod in sorted(pods.values(), key=_creation_order):
            uid = pod["metadata"]["uid"]
            phase = (pod.get("status") or {}).get("phase")
            # `finished`: ended in this tick, or earlier (this list may predate our write).
            if uid in self.runs or uid in self.finished or phase in TERMINAL:
                continue
            if pod["metadata"].get("deletionTimestamp"):
                self.delete(pod)  # never started (or started by an executor gone since)
            elif _has_started(pod):
                self.fail(pod, "the dev pod executor restarted while this pod ran", "Error")
            elif len(self.runs) < self.concurrency and self.retry_at.get(uid, 0) <= time.time():
                self.start(pod)

    # -- one pod -----------------------------------------------------------------------
    def start(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        try:
            run = start_pod(pod, self.work_dir, self.lookup(meta["namespace"]), now())
        except Refused as err:
            log(f"{_key(pod)}: refused: {err}")
            self.fail(pod, str(err), "StartError", code=128)
            return
        except (OSError, KeyError, TypeError, ValueError) as err:  # a spec we misread, a disk
            log(f"{_key(pod)}: cannot start:\n{traceback.format_exc()}")
            message = f"the dev pod executor could not start it: {type(err).__name__}: {err}"
            self.fail(pod, message, "StartError", code=128)
            return
        except NotYet as err:
            self.retry_at[uid] = time.time() + RETRY_SECONDS
            if self.waiting_message.get(uid) != str(err):
                self.waiting_message[uid] = str(err)
                self.write(pod, st.pod_status(pod, "Pending", [], [
                    st.container_status(c, st.waiting("CreateContainerConfigError", str(err)))
                    for c in pod["spec"]["containers"]], now(), now()))  # fmt: skip
            return
        self.retry_at.pop(uid, None)
        self.waiting_message.pop(uid, None)
        self.runs[uid] = run
        self.expose_logs(pod, run)
        log(f"{_key(pod)}: started {run.current_names()}")
        self.write(pod, run.status(now()))
        run.dirty = False

    def advance(self, run: PodRun) -> None:
        deadline = run.pod["spec"].get("activeDeadlineSeconds")
        if deadline and run.phase not in TERMINAL and run.age() > float(deadline):
            # As a kubelet: the pod ran past spec.activeDeadlineSeconds.
            run.signal_all(signal.SIGKILL)
            run.wait_all(5.0)
            run.poll(now(), killed=True)
            run.reason, run.dirty = "DeadlineExceeded", True
            run.message = f"Pod was active on the node longer than {deadline} s"
        # `dirty` until written: a failed write (API restarting) is retried next tick.
        run.dirty = run.poll(now()) or run.dirty
        run.pump_logs()
        if run.dirty:
            self.write(run.pod, run.status(now()))
            run.dirty = False
        if run.phase in TERMINAL:
            log(f"{_key(run.pod)}: {run.phase} {run.exit_codes()}")
            self.forget(run)

    def terminate(self, run: PodRun, pod: dict[str, Any] | None) -> None:
        """Deleted (Job suspended, cancelled, namespace gone): stop the processes within the
        grace period (≤ 10 s here), report Failed like a kubelet, then remove the pod."""
        if run.kill_deadline is None:
            grace = (pod or run.pod)["spec"].get("terminationGracePeriodSeconds", 30)
            run.signal_all(signal.SIGTERM)
            run.kill_deadline = time.monotonic() + min(float(grace), 10.0)
            log(f"{_key(run.pod)}: deleted, stopping")
        if run.alive() and time.monotonic() < run.kill_deadline:
            return
        run.signal_all(signal.SIGKILL)
        run.wait_all(5.0)
        run.poll(now(), killed=True)
        if pod is not None:
            self.write(pod, run.status(now(), message="the pod was deleted"))
            self.delete(pod)
        self.forget(run)

    def fail(self, pod: dict[str, Any], message: str, reason: str, code: int = 137) -> None:
        t = now()
        self.write(pod, st.pod_status(pod, "Failed", [], [
            st.container_status(c, st.terminated(code, t, t, message, reason))
            for c in pod["spec"]["containers"]], t, t, message=message))  # fmt: skip
        self.finished.add(pod["metadata"]["uid"])

    def forget(self, run: PodRun) -> None:
        uid = run.pod["metadata"]["uid"]
        self.runs.pop(uid, None)
        self.finished.add(uid)
        run.close()

    def shutdown(self) -> None:
        """Stopping (`make dev-down`): end every process group, and say so in the pods."""
        for run in self.runs.values():
            run.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for run in self.runs.values():
            run.wait_all(max(0.0, deadline - time.monotonic()))
            run.signal_all(signal.SIGKILL)
            run.wait_all(2.0)
            run.poll(now(), killed=True)
            with contextlib.suppress(ApiError):
                self.write(run.pod, run.status(now(), message="the dev pod executor stopped"))
            run.close()
        self.runs.clear()
        log("dev pod executor stopped")

    # -- API -----------------------------------------------------------------------------
    def lookup(self, namespace: str) -> Lookup:
        def get(kind: str, name: str) -> dict[str, str] | None:
            obj = self.kube.get("v1", kind, name, namespace)
            return None if obj is None else decode_data(obj)

        return get

    def write(self, pod: dict[str, Any], patch: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.kube.patch("v1", "Pod", meta["name"], patch, meta["namespace"], "status")
        except ApiError as err:
            if err.status != 404:
                raise

    def expose_logs(self, pod: dict[str, Any], run: PodRun) -> None:
        """Best effort: without kwok's Logs CRD the pod still runs, its logs stay files."""
        try:
            expose_logs(self.kube, pod, run.log_files())
        except ApiError as err:
            if not self.logs_unavailable:
                log(f"{_key(pod)}: logs only as files ({err}); is kwok's Logs CRD installed?")
            self.logs_unavailable = True

    def delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        path = self.kube.path("v1", "Pod", meta["namespace"], meta["name"])
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            self.kube.request("DELETE", path, body=body)
        except ApiError as err:
            if err.status not in (404, 409):
                raise


def _creation_order(pod: dict[str, Any]) -> tuple[str, str]:
    return pod["metadata"].get("creationTimestamp", ""), pod["metadata"]["name"]


def _has_started(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    every = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return any("running" in (s.get("state") or {}) for s in every)


def _key(pod: dict[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def log(line: str) -> None:
    print(f"{now()} {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlkube.devcluster.podexec")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args(argv)
    kube = Kube(args.kubeconfig)
    if not loopback_server(kube):
        host = kube.api.configuration.host
        print(f"error: the dev pod executor runs only against a loopback API server, not {host}",
              file=sys.stderr)  # fmt: skip
        return 2
    executor = Executor(kube, args.work_dir.resolve(), args.concurrency)

    def stop(_sig: int, _frame: object) -> None:
        executor.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"dev pod executor: pods annotated {ANNOTATION}={VALUE}, work dir {args.work_dir}")
    executor.serve(args.poll)
    return 0


if __name__ == "__main__":
    sys.exit(main())
