"""Fixtures for the rollout providers' process tests: real routers and upstream model servers
(the router tests' harness), a real Prometheus server, a plain HTTP server, all on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

HERE = Path(__file__).resolve().parent
ROUTER_TESTS = HERE.parent / "router"
for directory in (HERE, ROUTER_TESTS):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from rollout_harness import Prometheus, prometheus_config  # noqa: E402
from router_harness import (  # noqa: E402
    ROUTER_CMD,
    KubeFileDir,
    Router,
    Upstream,
    running_upstreams,
    stop_process,
    wait_http,
    wait_until,
)

from mlkube.devcluster.procs import free_port  # noqa: E402

# name -> fake_model_server options: blue is the healthy stable; green, the candidate, answers
# every 4th request 500 and takes 0.3 s; red disagrees (doubles every value).
UPSTREAMS = {
    "blue": [],
    "green": ["--fail-every", "4", "--delay", "0.3"],
    "red": ["--factor", "2"],
}


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Upstream]]:
    with running_upstreams(tmp_path_factory.mktemp("upstreams"), UPSTREAMS) as started:
        yield started


@pytest.fixture
def start_router(tmp_path: Path) -> Iterator[Any]:
    """Factory: a router subprocess serving `doc` (metrics on their own port)."""
    routers: list[Router] = []

    def start(doc: dict[str, Any], workers: int = 1) -> Router:
        config_dir = KubeFileDir(tmp_path / f"config-{len(routers)}")
        config_dir.write({"config.json": orjson.dumps(doc)})
        port, metrics = free_port(), free_port()
        log_path = tmp_path / f"router-{len(routers)}.log"
        proc = subprocess.Popen(
            [*ROUTER_CMD, "--config", config_dir.path("config.json"), "--host", "127.0.0.1",
             "--port", str(port), "--metrics-port", str(metrics), "--workers", str(workers),
             "--log-level", "info"],
            stdout=open(log_path, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        router = Router(port, metrics, proc, config_dir, log_path)
        routers.append(router)
        wait_http(f"{router.url}/readyz", proc)
        return router

    yield start
    for router in routers:
        stop_process(router.proc)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Debian's real Prometheus server on loopback (hack/ensure-promtool installs it)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: run hack/ensure-promtool (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("prometheus")
    config = root / "prometheus.yml"
    config.write_text(prometheus_config([]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        stdout=open(root / "prometheus.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(url + "/-/ready", proc, timeout=60)
        yield Prometheus(url, config, proc)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server process (`python -m http.server`) serving a directory."""
    root = tmp_path_factory.mktemp("web")
    (root / "ready").write_text("{}")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/ready", proc)
        yield url, root
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def hostile_http() -> Iterator[str]:
    """tests/support/hostile_http.py: endless and dripping bodies, redirects."""
    script = Path(__file__).resolve().parents[2] / "support" / "hostile_http.py"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base + "/nothing"), timeout=15)
        yield base
    finally:
        stop_process(proc)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 404
    except requests.RequestException:
        return False
