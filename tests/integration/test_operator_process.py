"""`mlkube operator` as the Helm chart runs it: a real process with an explicit kubeconfig, a
liveness endpoint that reports the age of the last API call, its own /metrics counting the
reconcile it did, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from typing import Any

from mlkube.contract import API_VERSION
from mlkube.devcluster.procs import free_port
from mlkube.k8s import Kube
from support.operator import OPERATOR_KUBECONFIG_ENV
from support.waiting import wait_for


def test_operator_command_serves_liveness_and_reconciles(
    kube: Kube, namespace: str, tmp_path: Any
) -> None:
    port, metrics_port = free_port(), free_port()
    log = open(tmp_path / "operator.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "mlkube", "operator", "--kubeconfig",
         os.environ[OPERATOR_KUBECONFIG_ENV], "--namespace", namespace,
         "--liveness", f"http://127.0.0.1:{port}/healthz", "--standalone"],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "MLKUBE_METRICS_PORT": str(metrics_port)},
    )  # fmt: skip
    try:

        def healthy() -> dict[str, Any] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return json.load(r) if r.status == 200 else None
            except OSError:
                return None

        health = wait_for(healthy, timeout=30, what="liveness endpoint")
        assert 0 <= health["apiContactAgeSeconds"] < 30  # the probe made a real API call
        artifact = tmp_path / "model.onnx"
        artifact.write_bytes(b"bytes")
        kube.create({
            "apiVersion": API_VERSION, "kind": "Model",
            "metadata": {"name": "live-v1", "namespace": namespace},
            "spec": {"modelName": "live", "version": "1", "framework": "onnx",
                     "artifact": {"uri": artifact.as_uri()}},
        })  # fmt: skip
        wait_for(lambda: (kube.get(API_VERSION, "Model", "live-v1", namespace) or {})
                 .get("status", {}).get("phase") == "Ready", what="Model Ready")  # fmt: skip
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            page = answer.read().decode()
        sample = 'mlkube_operator_reconcile_total{kind="Model",result="ok"}'
        (line,) = [ln for ln in page.splitlines() if ln.startswith(sample)]
        assert float(line.split()[-1]) >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "operator.log").read_text()[-2000:]
