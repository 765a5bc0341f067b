"""The real operator, in-process, for integration tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from kopf.testing import KopfRunner

from mlkube.devcluster.procs import free_port
from mlkube.k8s import Kube


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
    identity = {"KUBECONFIG": os.environ[OPERATOR_KUBECONFIG_ENV]}
    with patched_env({**identity, **(env or {})}), KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


@dataclass(frozen=True)
class WebhookSetup:
    env: dict[str, str]
    configuration: str


def webhook_setup(directory: Path, configuration: str, operator_username: str) -> WebhookSetup:
    """A CA made by the test, a serving cert for 127.0.0.1 and the operator's webhook env."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return WebhookSetup(
        env={
            "MLKUBE_WEBHOOK_PORT": str(free_port()),
            "MLKUBE_WEBHOOK_ADDR": "127.0.0.1",
            "MLKUBE_WEBHOOK_HOST": "127.0.0.1",
            "MLKUBE_WEBHOOK_CERT": str(cert_path),
            "MLKUBE_WEBHOOK_KEY": str(key_path),
            "MLKUBE_WEBHOOK_CA": str(ca_path),
            "MLKUBE_WEBHOOK_CONFIG": configuration,
            "MLKUBE_OPERATOR_USERNAME": operator_username,
        },
        configuration=configuration,
    )


def delete_webhook_configurations(kube: Kube, name: str) -> None:
    """Kopf leaves its managed configurations behind; without the server they would block."""
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        kube.delete("admissionregistration.k8s.io/v1", kind, name)
