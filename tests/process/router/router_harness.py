"""Helpers for the router's process tests: processes, kubelet-style files, a load client.

Files are updated the way the kubelet updates ConfigMap and Secret volumes (a new timestamped
directory, then an atomic swap of the `..data` symlink), so reload tests exercise that path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import requests
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
ROUTER_CMD = [sys.executable, "-m", "mlkube_serving", "router"]
V2_PATH = "/v2/models/credit/infer"
V2_BODY = orjson.dumps(
    {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.5, 2.0, 3.0]}]}
)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"process exited with {proc.returncode}:\n{out}")
        try:
            if requests.get(url, timeout=0.5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not become ready within {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class KubeFileDir:
    """A directory updated like a kubelet-projected volume: `<dir>/<name>` -> `..data/<name>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._generation = 0

    def path(self, name: str) -> str:
        return str(self.root / name)

    def write(self, files: dict[str, bytes]) -> None:
        self._generation += 1
        version = self.root / f"..{self._generation:04d}_{time.time_ns()}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.root / "..data")


@dataclass
class Upstream:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        return dict(requests.get(self.url + "/stats", timeout=5).json())

    def reset(self) -> None:
        requests.post(self.url + "/stats/reset", timeout=5).raise_for_status()


@contextlib.contextmanager
def running_upstreams(logs: Path, options: dict[str, list[str]]) -> Iterator[dict[str, Upstream]]:
    """fake_model_server.py processes, name -> its extra options, Ready when entered and
    stopped on exit (their output in `logs`)."""
    from mlkube.devcluster.procs import free_port

    started: dict[str, Upstream] = {}
    try:
        for name, extra in options.items():
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "fake_model_server.py"), "--name", name,
                 "--port", str(port), *extra],
                stdout=open(logs / f"{name}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            started[name] = Upstream(name, port, proc)
        for upstream in started.values():
            wait_http(upstream.url + "/v2/health/ready", upstream.proc)
        yield started
    finally:
        for upstream in started.values():
            stop_process(upstream.proc)


@dataclass
class Router:
    port: int
    metrics_port: int
    proc: subprocess.Popen[bytes]
    config_dir: KubeFileDir
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def update(self, doc: dict[str, Any]) -> None:
        self.config_dir.write({"config.json": orjson.dumps(doc)})

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for (sample, sample_labels), value in self.metrics().items():
            if sample == name and set(labels.items()) <= set(sample_labels):
                total += value
        return total

    def log(self) -> str:
        return self.log_path.read_text()

    def mirror_settled(self) -> bool:
        """True once the mirror request count stops moving for a moment."""
        before = self.metric("mlkube_router_requests_total", kind="mirror")
        time.sleep(0.3)
        return before == self.metric("mlkube_router_requests_total", kind="mirror")


def base_config(upstreams: dict[str, Upstream], **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "endpoint": "credit",
        "deployments": {name: {"url": up.url} for name, up in upstreams.items()},
        "traffic": {"blue": 70, "green": 30},
        "healthIntervalSeconds": 1,
    }
    doc.update(overrides)
    return doc


@dataclass
class Result:
    status: int
    body: bytes
    deployment: str | None


async def fire(
    url: str,
    count: int,
    *,
    concurrency: int = 48,
    headers: dict[str, str] | None = None,
    body: bytes = V2_BODY,
    stop: threading.Event | None = None,
    results: list[Result] | None = None,
) -> list[Result]:
    """POST `body` to `url` `count` times (or until `stop` is set) over keep-alive connections.

    Results are appended to `results` (a new list by default) as they arrive and returned.
    """
    out: list[Result] = [] if results is None else results
    remaining = count
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and not (stop is not None and stop.is_set()):
                remaining -= 1
                async with session.post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    served = resp.headers.get("x-mlkube-deployment")
                    out.append(Result(resp.status, payload, served))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def served_by(result: Result) -> str:
    """The deployment that answered, read from the upstream's own reply (not router headers)."""
    return str(orjson.loads(result.body)["model_name"])


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    assert predicate(), "condition not met in time"
