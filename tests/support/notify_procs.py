"""Real processes for the notification integration tests: the `cloudevents` SDK receiver of
tests/process/outbox/outbox_receiver.py (on a fixed loopback port, so it can go down and come
back), and the operator as its own process (so it can be SIGKILLed) with its own outbox file;
and the objects and reads those tests share."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from mlkube.contract import API_VERSION
from mlkube.devcluster.procs import free_port
from mlkube.k8s import Kube
from support.operator import OPERATOR_KUBECONFIG_ENV, stop_process
from support.waiting import wait_for

RECEIVER = Path(__file__).resolve().parents[1] / "process" / "outbox" / "outbox_receiver.py"


class Receiver:
    """The receiver process; `stop` and `start` keep its port (a sink that is down, then up)."""

    def __init__(self, log_dir: Path, name: str = "receiver", key: str = "") -> None:
        self.port, self.key = free_port(), key
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.log_dir, self.name = log_dir, name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Receiver:
        log = open(self.log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 (the child's)
        argv = [sys.executable, str(RECEIVER), "--port", str(self.port), "--key", self.key]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, 20, what=f"{self.name} up")
        return self

    def _up(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/received", timeout=1).ok
        except requests.RequestException:
            return False

    def control(self, **state: Any) -> None:
        requests.post(f"http://127.0.0.1:{self.port}/control", json=state, timeout=5)

    def received(self) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = requests.get(
            f"http://127.0.0.1:{self.port}/received", timeout=5
        ).json()
        return got

    def attempts(self) -> dict[str, int]:
        got: dict[str, int] = requests.get(
            f"http://127.0.0.1:{self.port}/attempts", timeout=5
        ).json()
        return got

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5)
            self.proc = None


class OperatorProcess:
    """`mlkube operator` watching one namespace, its outbox at `outbox`; `kill` is SIGKILL."""

    def __init__(self, namespace: str, log_dir: Path, outbox: Path, **env: str) -> None:
        self.namespace, self.log_dir, self.outbox = namespace, log_dir, outbox
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.exits: list[int | None] = []  # each ended run's exit code (SIGKILL: -9)

    def start(self) -> OperatorProcess:
        self.runs += 1
        env = {**os.environ, "MLKUBE_OUTBOX_PATH": str(self.outbox),
               "MLKUBE_NAMESPACE": "mlkube-system", "MLKUBE_METRICS_PORT": str(free_port()),
               **self.env}  # fmt: skip
        for key in ("MLKUBE_WEBHOOK_PORT", "MLKUBE_EVENT_SINK_URI"):
            if key not in self.env:
                env.pop(key, None)
        log = open(self.log_dir / f"operator-{self.runs}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlkube", "operator", "--kubeconfig",
             os.environ[OPERATOR_KUBECONFIG_ENV], "--namespace", self.namespace,
             "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        return self

    def output(self) -> str:
        return "".join(
            (self.log_dir / f"operator-{n}.log").read_text(errors="replace")
            for n in range(1, self.runs + 1)
        )

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.output()
        self.proc.kill()
        self.exits.append(self.proc.wait(10))
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
            self.exits.append(self.proc.returncode)
            self.proc = None


# -- objects and reads the notification tests share ---------------------------------------
REGISTERED = "dev.mlkube.model.registered.v1"
VERIFIED = "dev.mlkube.model.verified.v1"
# Retries that outlast a test's outage, quickly: a sink that comes back is sent to at once.
FAST = {"retry": 100, "backoffPolicy": "linear", "backoffDelay": "PT0.2S", "timeout": "PT2S"}


class Procs:
    """One operator process and the receivers of a test; all stopped by `stop`."""

    def __init__(self, namespace: str, tmp: Path) -> None:
        self.tmp = tmp
        self.operator = OperatorProcess(namespace, tmp, tmp / "outbox" / "outbox.db")
        self.receivers: list[Receiver] = []

    def receiver(self, name: str, key: str = "") -> Receiver:
        self.receivers.append(Receiver(self.tmp, name, key))
        return self.receivers[-1]

    def stop(self) -> None:
        self.operator.stop()
        for receiver in self.receivers:
            receiver.stop()


def sink(kube: Kube, namespace: str, name: str, uri: str, **spec: Any) -> None:
    kube.create({"apiVersion": API_VERSION, "kind": "EventSink",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"uri": uri, "delivery": FAST, **spec}})  # fmt: skip


def model(kube: Kube, namespace: str, name: str, tmp: Path) -> None:
    """A Model `credit-risk` whose version is the name's last part, its artifact a file."""
    artifact = tmp / f"{name}.onnx"
    artifact.write_bytes(name.encode())
    spec = {"modelName": "credit-risk", "version": name.rsplit("-", 1)[-1], "framework": "onnx",
            "artifact": {"uri": artifact.as_uri()}}  # fmt: skip
    kube.create({"apiVersion": API_VERSION, "kind": "Model",
                 "metadata": {"name": name, "namespace": namespace}, "spec": spec})  # fmt: skip


def ready_model(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, "Model", name, namespace) or {}
    return obj if (obj.get("status") or {}).get("phase") == "Ready" else None


def sink_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "EventSink", name, namespace) or {}
    return dict(obj.get("status") or {})


def ready_of(status: dict[str, Any]) -> tuple[str, str] | None:
    for cond in status.get("conditions") or []:
        if cond["type"] == "Ready":
            return cond["status"], cond["reason"]
    return None


def pending_on_disk(outbox: Path, sink_key: str) -> int:
    """Deliveries for a sink in the operator's SQLite outbox, read as another process would
    (-1: not readable yet)."""
    if not outbox.exists():
        return -1
    try:
        with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT COUNT(*) FROM deliveries WHERE sink=?", (sink_key,)).fetchone()
    except sqlite3.Error:  # being created (no tables yet), or locked for a moment
        return -1
    return int(row[0])
