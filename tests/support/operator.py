"""The real operator, in-process, for integration tests."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from kopf.testing import KopfRunner

from mlkube.builders.webhook_config import build_webhook_configurations, url_client
from mlkube.devcluster.procs import free_port
from mlkube.handlers import clients
from mlkube.k8s import Kube


def stop_process(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (a process that already ended is left)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


OPERATOR_KUBECONFIG_ENV = "MLKUBE_TEST_OPERATOR_KUBECONFIG"


@contextlib.contextmanager
def run_operator(namespace: str, env: dict[str, str] | None = None) -> Iterator[KopfRunner]:
    """The real operator in a thread, watching one namespace (peering off), logged in as the
    operator's own identity (bound to the chart's ClusterRole by the `crds` fixture)."""
    args = ["run", "-m", "mlkube.handlers.main", "--standalone", "--namespace", namespace]
    # Each run starts as a new operator process would: the API client (and its discovery
    # cache) is per process, and one shared across runs answered "no ServiceMonitor kind"
    # from the previous test's lookup less than a second before the monitoring CRDs came.
    clients.kube.cache_clear()
    identity = {"KUBECONFIG": os.environ[OPERATOR_KUBECONFIG_ENV]}
    with patched_env({**identity, **(env or {})}), KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


@dataclass(frozen=True)
class WebhookSetup:
    env: dict[str, str]
    configurations: list[dict[str, Any]]


def webhook_setup(directory: Path, operator_username: str, namespace: str) -> WebhookSetup:
    """A CA made by the test, a serving cert for 127.0.0.1, the operator's webhook env, and the
    configurations (loopback URL, limited to `namespace`) that the admin registers, as the dev
    cluster does: the operator itself never registers any. The audit key lives in `namespace`."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    port = free_port()
    configurations = build_webhook_configurations(
        url_client(f"https://127.0.0.1:{port}"),
        ca_bundle=base64.b64encode(ca.cert_pem.bytes()).decode(),
        name=f"webhooks-{namespace}.mlkube.dev",
        namespaces=[namespace],
    )
    return WebhookSetup(
        env={
            "MLKUBE_WEBHOOK_PORT": str(port),
            "MLKUBE_WEBHOOK_ADDR": "127.0.0.1",
            "MLKUBE_WEBHOOK_CERT": str(cert_path),
            "MLKUBE_WEBHOOK_KEY": str(key_path),
            "MLKUBE_NAMESPACE": namespace,
            "MLKUBE_OPERATOR_USERNAME": operator_username,
        },
        configurations=configurations,
    )


@contextlib.contextmanager
def registered_webhooks(kube: Kube, configurations: list[dict[str, Any]]) -> Iterator[None]:
    """The configurations exist for the block's duration (fail-open, but nothing should call a
    server that is gone)."""
    try:
        for obj in configurations:
            kube.apply(obj, field_manager="mlkube-tests")
        yield
    finally:
        for obj in configurations:
            kube.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
