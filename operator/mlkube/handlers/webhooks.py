"""Admission webhooks: audit stamping on Model writes and the Model DELETE guard.

The webhook server runs inside the operator (Kopf). It is enabled by MLKUBE_WEBHOOK_PORT;
Kopf then keeps the Mutating/ValidatingWebhookConfiguration named MLKUBE_WEBHOOK_CONFIG in sync
with the served certificate. Decisions live in `mlkube.reconcile.admission` (pure); this module only
reads the request and, for the guard, lists live references through the API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from mlkube.builders.rbac import WEBHOOK_CONFIGURATION
from mlkube.contract import API_VERSION, GROUP, VERSION
from mlkube.handlers.clients import kube
from mlkube.reconcile.admission import audit_annotations, referencing_endpoints

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Deleting a namespace is a deliberate act: its controller may delete Models still referenced.
EXEMPT_DELETERS = frozenset(
    {
        "system:serviceaccount:kube-system:namespace-controller",
        "system:kube-controller-manager",
    }
)


@dataclass(frozen=True)
class WebhookConfig:
    port: int | None
    addr: str
    host: str | None
    certfile: str | None
    keyfile: str | None
    cafile: str | None
    configuration: str
    operator_username: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WebhookConfig:
        env = dict(os.environ if env is None else env)
        port = env.get("MLKUBE_WEBHOOK_PORT")
        return cls(
            port=int(port) if port else None,
            addr=env.get("MLKUBE_WEBHOOK_ADDR", "0.0.0.0"),
            host=env.get("MLKUBE_WEBHOOK_HOST") or None,
            certfile=env.get("MLKUBE_WEBHOOK_CERT") or None,
            keyfile=env.get("MLKUBE_WEBHOOK_KEY") or None,
            cafile=env.get("MLKUBE_WEBHOOK_CA") or None,
            configuration=env.get("MLKUBE_WEBHOOK_CONFIG", WEBHOOK_CONFIGURATION),
            operator_username=env.get("MLKUBE_OPERATOR_USERNAME") or _own_service_account(env),
        )


def _own_service_account(env: dict[str, str]) -> str:
    """The operator's identity in requests it makes itself (from the pod's mounted SA)."""
    name = env.get("MLKUBE_SERVICE_ACCOUNT", "mlkube-operator")
    try:
        namespace = SA_NAMESPACE_FILE.read_text().strip()
    except OSError:
        namespace = env.get("MLKUBE_NAMESPACE", "mlkube-system")
    return f"system:serviceaccount:{namespace}:{name}"


@kopf.on.startup()
def configure_webhooks(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = WebhookConfig.from_env()
    if config.port is None:
        # Kopf refuses to run admission handlers without a server; with webhooks off, serve them
        # on an unadvertised loopback port and register no configuration, so nothing calls it.
        settings.admission.server = kopf.WebhookServer(addr="127.0.0.1", insecure=True)
        settings.admission.managed = None
        return
    settings.admission.server = kopf.WebhookServer(
        addr=config.addr, port=config.port, host=config.host,
        certfile=config.certfile, pkeyfile=config.keyfile, cafile=config.cafile,
    )  # fmt: skip
    settings.admission.managed = config.configuration


# Fail open: with the operator down, Model writes still go through (unstamped, history says
# "unknown") rather than blocking GitOps. The DELETE guard below fails closed: safety first.
@kopf.on.mutate(
    GROUP, VERSION, "models", id="audit", operations=["CREATE", "UPDATE"], ignore_failures=True
)
def stamp_audit(
    userinfo: kopf.UserInfo,
    patch: kopf.Patch,
    operation: str = "",
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    **_: Any,
) -> None:
    """Record who created the Model and who last changed its spec (annotations)."""
    stamps = audit_annotations(
        operation=operation,
        username=str(userinfo.get("username", "")),
        operator_username=WebhookConfig.from_env().operator_username,
        old=dict(old) if old is not None else None,
        new=dict(new) if new is not None else {},
    )
    for key, value in stamps.items():
        patch.metadata.annotations[key] = value


@kopf.on.validate(GROUP, VERSION, "models", id="delete-guard", operations=["DELETE"])
def guard_model_delete(body: kopf.Body, userinfo: kopf.UserInfo, **_: Any) -> None:
    """Refuse to delete a Model that an endpoint still serves, naming the endpoints."""
    if userinfo.get("username") in EXEMPT_DELETERS:
        return
    name, namespace = body["metadata"]["name"], body["metadata"].get("namespace")
    endpoints = kube().list(API_VERSION, "OnlineEndpoint", namespace)
    users = referencing_endpoints(endpoints, name)
    if users:
        raise kopf.AdmissionError(
            f"Model {namespace}/{name} is deployed by OnlineEndpoint {', '.join(users)}: "
            "remove it from their deployments (or delete them) first",
            code=409,
        )
