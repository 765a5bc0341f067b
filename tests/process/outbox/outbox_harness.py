"""Processes for the outbox tests: the `cloudevents` SDK receiver and the delivering engine,
each a real process on loopback (the bench under bench/events uses them too)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from mlkube.devcluster.procs import free_port

HERE = Path(__file__).resolve().parent


class Receiver:
    def __init__(self, log_dir: Path, name: str = "receiver", key: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "outbox_receiver.py"),
                "--port",
                str(self.port),
                "--key",
                key,
            ],
            stdout=open(log_dir / f"{name}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: _up(self.url + "/received"), 15, f"{name} up")

    def control(self, **state: Any) -> None:
        requests.post(self.url + "/control", json=state, timeout=5).raise_for_status()

    def received(self) -> list[dict[str, Any]]:
        doc: list[dict[str, Any]] = requests.get(self.url + "/received", timeout=5).json()
        return doc

    def attempts(self) -> dict[str, int]:
        doc: dict[str, int] = requests.get(self.url + "/attempts", timeout=5).json()
        return doc

    def ids(self) -> set[str]:
        return {event["id"] for event in self.received()}

    def stop(self) -> None:
        stop_process(self.proc)


class Deliverer:
    def __init__(self, log_dir: Path, db: Path, url: str, *args: str, name: str = "deliverer"):
        self.log = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "outbox_deliverer.py"),
                "--db",
                str(db),
                "--url",
                url,
                *args,
            ],
            stdout=open(self.log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: "ready" in self.output(), 20, f"{name} ready")

    def output(self) -> str:
        if self.proc.poll() is not None and "ready" not in self.log.read_text():
            raise AssertionError(
                f"deliverer exited {self.proc.returncode}:\n{self.log.read_text()}"
            )
        return self.log.read_text()

    def last_state(self) -> dict[str, Any]:
        import json

        lines = [line for line in self.output().splitlines() if line.startswith("state ")]
        state: dict[str, Any] = json.loads(lines[-1][6:]) if lines else {}
        return state

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for: {what}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
