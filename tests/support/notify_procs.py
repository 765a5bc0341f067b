"""Real processes for the notification integration tests: the `cloudevents` SDK receiver of
tests/process/outbox/outbox_receiver.py (on a fixed loopback port, so it can go down and come back),
and the operator as its own process (so it can be SIGKILLed) with its own outbox file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from mlkube.devcluster.procs import free_port
from support.operator import OPERATOR_KUBECONFIG_ENV, stop_process
from support.waiting import wait_for

RECEIVER = Path(__file__).resolve().parents[1] / "process" / "outbox" / "outbox_receiver.py"


class Receiver:
    """The receiver process; `stop` and `start` keep its port (a sink that is down, then up)."""

    def __init__(self, log_dir: Path, name: str = "receiver") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.log_dir, self.name = log_dir, name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Receiver:
        log = open(self.log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 (the child's)
        self.proc = subprocess.Popen([sys.executable, str(RECEIVER), "--port", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
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
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
            self.proc = None
