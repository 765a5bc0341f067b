"""Drift sidecar as a real subprocess on free loopback ports, with a synthetic profile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlkube.devcluster.procs import free_port
from mlkube_serving.drift import synthetic
from mlkube_serving.drift.profile import build_profile, write_profile

WINDOW = 500


@dataclass(frozen=True)
class Sidecar:
    url: str
    metrics_url: str
    process: subprocess.Popen[bytes]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"sidecar exited with {process.returncode}:\n{out}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"sidecar at {url} not ready after {timeout}s")


@contextmanager
def run_sidecar(profile: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Sidecar]:
    """`python -m mlkube_serving drift-sidecar` until the block ends (then SIGTERM)."""
    port, metrics_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "mlkube_serving", "drift-sidecar", "--profile", str(profile),
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port), *args,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + "/healthz", process)
        wait_ready(f"http://127.0.0.1:{metrics_port}/metrics", process)
        yield Sidecar(url, f"http://127.0.0.1:{metrics_port}/metrics", process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic profile; x0..x9 are the most important (so top-N series can be checked)."""
    importance = {f"x{i}": 1.0 - i / 100 for i in range(10)}
    profile = build_profile(
        synthetic.make_columns(20_000, seed=1),
        window_size=WINDOW,
        prediction_column=synthetic.PREDICTION,
        model="synthetic",
        importance=importance,
        bootstrap_windows=500,
    )
    path = tmp_path_factory.mktemp("drift") / "profile.json"
    write_profile(profile, path)
    return path


@pytest.fixture
def sidecar_runner() -> Callable[..., AbstractContextManager[Sidecar]]:
    """`with sidecar_runner(profile_path, *flags, env=...) as sidecar:` starts a real sidecar."""
    return run_sidecar
