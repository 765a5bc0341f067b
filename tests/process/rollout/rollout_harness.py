"""Helpers for the rollout providers' process tests (importable: conftest puts this
directory on sys.path, pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import orjson
import requests
from router_harness import V2_PATH, Result, fire

from mlkube.builders.names import COMPONENT_ROUTER, pod_selector
from mlkube.builders.operator_config import LOOPBACK_NETWORKS, OperatorConfig
from mlkube.controllers.rollout_providers import ProviderState, RawMeasurement, measure_metric
from support.fake_kube import FakeKube

DEV = OperatorConfig(pod_networks=LOOPBACK_NETWORKS, allow_file_artifacts=True)
GREEN_BUCKET = (0.25, 0.5)  # 0.3 s answers: every observation lands in this bucket


def router_pod(uid: str, metrics_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"credit-router-{uid}", "namespace": "ns", "uid": uid,
            "labels": pod_selector("credit", COMPONENT_ROUTER),
        },
        "spec": {"containers": [{"name": "router", "ports": [
            {"name": "http", "containerPort": 1},
            {"name": "metrics", "containerPort": metrics_port},
        ]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


def endpoint(candidate: str = "green", stable: str = "blue") -> dict[str, Any]:
    return {
        "metadata": {"name": "credit", "namespace": "ns"},
        "spec": {"rollout": {"candidate": candidate, "stable": stable}},
    }


def builtin(kind: str, **fields: Any) -> dict[str, Any]:
    return {"name": kind, "provider": {"builtin": {"type": kind, **fields}}}


class Meter:
    """One metric measured through the entry point, its state carried between calls."""

    def __init__(self, kube: FakeKube, metric: dict[str, Any], ep: dict[str, Any]) -> None:
        self.kube, self.metric, self.endpoint = kube, metric, ep
        self.state: ProviderState | None = None

    def measure(self) -> RawMeasurement:
        raw, self.state = measure_metric(self.endpoint, self.metric, self.kube, DEV, self.state)
        assert raw.error is None, raw.error
        return raw


def send(url: str, count: int) -> list[Result]:
    return asyncio.run(fire(url + V2_PATH, count, concurrency=32))


def of(results: list[Result], name: str) -> tuple[int, int]:
    """(answers, 5xx answers) the client got from deployment `name`."""
    mine = [r for r in results if r.deployment == name]
    return len(mine), sum(r.status >= 500 for r in mine)


class Prometheus:
    def __init__(self, url: str, config: Path, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.config, self.proc = url, config, proc

    def scrape(self, targets: list[str]) -> None:
        """Point the scrape config at `targets` and reload (SIGHUP)."""
        self.config.write_text(prometheus_config(targets))
        requests.post(self.url + "/-/reload", timeout=10).raise_for_status()


def prometheus_config(targets: list[str]) -> str:
    return orjson.dumps(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "router", "static_configs": [{"targets": targets}]}],
        }
    ).decode()  # JSON is YAML
