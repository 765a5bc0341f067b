"""Fixtures for the router's process tests: real upstream servers and the router, on loopback.

Helpers live in router_harness.py (importable by the test modules: this directory is put on
sys.path here, since pytest runs with --import-mode=importlib).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from router_harness import (  # noqa: E402
    ROUTER_CMD,
    KubeFileDir,
    Router,
    Upstream,
    running_upstreams,
    stop_process,
    wait_http,
)

from mlkube.devcluster.procs import free_port  # noqa: E402


@pytest.fixture(scope="session")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Upstream]]:
    """blue and green answer data*1 (they agree), red answers data*2 (it disagrees)."""
    factors = {"blue": 1.0, "green": 1.0, "red": 2.0}
    options = {name: ["--factor", str(factor)] for name, factor in factors.items()}
    with running_upstreams(tmp_path_factory.mktemp("upstreams"), options) as started:
        yield started


@pytest.fixture
def fresh_upstreams(upstreams: dict[str, Upstream]) -> dict[str, Upstream]:
    for upstream in upstreams.values():
        upstream.reset()
    return upstreams


@pytest.fixture
def start_router(tmp_path: Path) -> Iterator[Any]:
    """Factory: start a router subprocess on `doc`; every router is stopped after the test."""
    routers: list[Router] = []

    def start(
        doc: dict[str, Any] | bytes,
        *,
        workers: int = 1,
        wait_ready: bool = True,
        push_key_file: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> Router:
        config_dir = KubeFileDir(tmp_path / f"config-{len(routers)}")
        raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        config_dir.write({"config.json": raw})
        push = ["--push-key-file", str(push_key_file)] if push_key_file else []
        port, metrics_port = free_port(), free_port()
        log_path = tmp_path / f"router-{len(routers)}.log"
        proc = subprocess.Popen(
            [*ROUTER_CMD, "--config", config_dir.path("config.json"), "--host", "127.0.0.1",
             "--port", str(port), "--metrics-port", str(metrics_port),
             "--workers", str(workers), "--log-level", "info", *push, *extra_args],
            stdout=open(log_path, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        router = Router(port, metrics_port, proc, config_dir, log_path)
        routers.append(router)
        wait_http(f"{router.url}/healthz", proc)
        if wait_ready:
            wait_http(f"{router.url}/readyz", proc)
        return router

    yield start
    for router in routers:
        stop_process(router.proc)
