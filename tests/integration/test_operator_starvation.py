"""Slow artifact verifications do not starve the operator: with more dripping artifacts than
Kopf has threads, an endpoint still reconciles and the Model DELETE guard still answers (it
used to queue behind the verifications until the API server gave up and let the delete of a
served Model through, fail-open)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.contract import API_VERSION
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.devcluster.procs import free_port
from mlkube.k8s import ApiError, Kube
from support.operator import registered_webhooks, run_operator, webhook_setup
from support.waiting import wait_for

SLOW_MODELS = 4  # twice Kopf's threads in this test, twice the verification threads


@pytest.fixture
def dripping_artifact() -> Iterator[str]:
    """A URL whose body drips one byte every 0.2 s, forever (tests/support/hostile_http.py)."""
    script = Path(__file__).resolve().parents[1] / "support" / "hostile_http.py"
    port = free_port()
    process = subprocess.Popen([sys.executable, str(script), str(port)])
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                urllib.request.urlopen(base + "/nothing", timeout=1).close()
            except urllib.error.HTTPError:
                return True  # 404: serving
            except OSError:
                return False
            return True

        wait_for(up, timeout=20, what="the dripping server")
        yield base + "/slow"
    finally:
        process.terminate()  # the verifications still reading fail at once
        process.wait(timeout=10)


def model(name: str, namespace: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modelName": "churn", "version": name.rsplit("-", 1)[-1], "framework": "onnx",
                 "artifact": {"uri": uri}},
    }  # fmt: skip


def test_saturated_verifications_leave_reconciles_and_the_guard_responsive(
    kube: Kube, namespace: str, tmp_path: Path, dripping_artifact: str
) -> None:
    from mlkube.handlers.config import operator_config

    setup = webhook_setup(tmp_path, OPERATOR_USER, namespace)
    env = {
        **setup.env,
        "MLKUBE_MAX_WORKERS": "2",  # Kopf's pool
        "MLKUBE_VERIFY_WORKERS": "2",
        "MLKUBE_ARTIFACT_TIMEOUT_SECONDS": "45",
    }
    operator_config.cache_clear()
    try:
        with registered_webhooks(kube, setup.configurations), run_operator(namespace, env=env):
            for i in range(SLOW_MODELS):
                kube.create(model(f"slow-{i}", namespace, dripping_artifact))
            time.sleep(3)  # every thread that verifies is now reading a dripping body
            kube.create({
                "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
                "metadata": {"name": "churn", "namespace": namespace},
                "spec": {"deployments": [{"name": "blue", "model": "slow-0"}],
                         "traffic": {"blue": 100}},
            })  # fmt: skip
            started = time.monotonic()

            def reconciled() -> Any:
                obj = kube.get(API_VERSION, "OnlineEndpoint", "churn", namespace) or {}
                return (obj.get("status") or {}).get("conditions")

            wait_for(reconciled, timeout=20, what="the endpoint reconciled (Kopf pool free)")
            reconcile_seconds = time.monotonic() - started
            started = time.monotonic()
            with pytest.raises(ApiError) as refused:
                kube.delete(API_VERSION, "Model", "slow-0", namespace)
            guard_seconds = time.monotonic() - started
            assert refused.value.status == 409, refused.value
            assert kube.get(API_VERSION, "Model", "slow-0", namespace) is not None
            slow = kube.get(API_VERSION, "Model", "slow-3", namespace) or {}
            assert (slow.get("status") or {}).get("phase") != "Ready"  # still verifying
    finally:
        operator_config.cache_clear()
    print(f"\nendpoint reconciled {reconcile_seconds:.1f}s, guard answered {guard_seconds:.2f}s")
    assert guard_seconds < 3.0
    assert os.environ.get("MLKUBE_VERIFY_WORKERS") is None  # the env was restored
