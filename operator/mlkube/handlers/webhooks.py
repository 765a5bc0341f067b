"""Admission webhooks: audit stamping (with proofs) on Model writes and the Model DELETE guard
(a Model that an OnlineEndpoint or a BatchEndpoint deployment names cannot be deleted).
The Environment webhooks are in handlers/environment_webhooks.py.

The webhook server runs inside the operator (Kopf) when MLKUBE_WEBHOOK_PORT is set. The operator
only serves: the configurations that point the API server here are not the operator's to
create. The Helm chart ships them with a Service reference (removed by `helm uninstall`); the
dev cluster and the tests create them with a loopback URL, from the same builder
(`mlkube.builders.webhook_config`). Decisions live in `mlkube.reconcile.admission` (pure); this
module reads the request and, for the guard, lists live references through the API.

Stamps carry an HMAC proof (`mlkube.reconcile.audit_proof`) under a key kept in the Secret
AUDIT_KEY_SECRET in the operator's namespace, created on first start and read only by the
operator; the Model reconcile trusts only proven stamps.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import kopf

from mlkube.builders.rbac import AUDIT_KEY_SECRET
from mlkube.builders.webhook_config import AUDIT_WEBHOOK, DELETE_GUARD_WEBHOOK, NAMESPACE_DELETERS
from mlkube.contract import API_VERSION, GROUP, PLURAL_MODELS, VERSION
from mlkube.controllers.endpoint_models import ENDPOINT_KINDS
from mlkube.handlers.clients import kube
from mlkube.k8s import ApiError
from mlkube.reconcile.admission import audit_annotations, referencing_endpoints

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# Deleting a namespace is a deliberate act: its controller may delete Models still referenced.
# (The configurations do not even send those requests; this covers a hand-made configuration.)
EXEMPT_DELETERS = frozenset(NAMESPACE_DELETERS)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookConfig:
    port: int | None
    addr: str
    certfile: str | None
    keyfile: str | None
    namespace: str
    operator_username: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WebhookConfig:
        env = dict(os.environ if env is None else env)
        port = env.get("MLKUBE_WEBHOOK_PORT")
        namespace = _own_namespace(env)
        return cls(
            port=int(port) if port else None,
            addr=env.get("MLKUBE_WEBHOOK_ADDR", "0.0.0.0"),
            certfile=env.get("MLKUBE_WEBHOOK_CERT") or None,
            keyfile=env.get("MLKUBE_WEBHOOK_KEY") or None,
            namespace=namespace,
            operator_username=env.get("MLKUBE_OPERATOR_USERNAME")
            or f"system:serviceaccount:{namespace}:"
            f"{env.get('MLKUBE_SERVICE_ACCOUNT', 'mlkube-operator')}",
        )


def _own_namespace(env: dict[str, str]) -> str:
    """The operator's namespace: MLKUBE_NAMESPACE, else the pod's mounted service account's."""
    if env.get("MLKUBE_NAMESPACE"):
        return env["MLKUBE_NAMESPACE"]
    try:
        return SA_NAMESPACE_FILE.read_text().strip()
    except OSError:
        return "mlkube-system"


class _AuditKey:
    """The proof key, loaded at startup (None: webhooks off, every stamp reads `unknown`)."""

    value: bytes | None = None


def audit_key() -> bytes | None:
    return _AuditKey.value


def load_audit_key(namespace: str) -> bytes:
    """The key from the operator's Secret, created with a random key on first start."""
    for _ in range(3):
        secret = kube().get("v1", "Secret", AUDIT_KEY_SECRET, namespace)
        if secret is not None:
            key = base64.b64decode((secret.get("data") or {}).get("key") or "")
            if len(key) < 16:
                raise kopf.PermanentError(f"Secret {namespace}/{AUDIT_KEY_SECRET} holds no key")
            return key
        try:
            kube().create({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": AUDIT_KEY_SECRET, "namespace": namespace,
                             "labels": {"app.kubernetes.io/name": "mlkube"}},
                "data": {"key": base64.b64encode(secrets.token_bytes(32)).decode()},
            })  # fmt: skip
        except ApiError as err:
            if err.status != 409:  # 409: another replica created it first; read theirs
                raise
    raise kopf.PermanentError(f"cannot read Secret {namespace}/{AUDIT_KEY_SECRET}")


@kopf.on.startup()
def configure_webhooks(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = WebhookConfig.from_env()
    # Never managed: Kopf would create configurations at runtime and leave them behind.
    settings.admission.managed = None
    if config.port is None:
        # Kopf refuses to run admission handlers without a server; with webhooks off, serve them
        # on an unadvertised loopback port: no configuration points at it, so nothing calls it.
        settings.admission.server = kopf.WebhookServer(addr="127.0.0.1", insecure=True)
        _AuditKey.value = None
        return
    try:
        _AuditKey.value = load_audit_key(config.namespace)
    except (ApiError, kopf.PermanentError) as err:
        # No namespace, no rights or a damaged Secret (a misconfigured setup): stamps stay
        # provable until the operator restarts, then read `unknown`. Never a blocked start.
        log.warning(f"audit key Secret unavailable ({err}); using a key for this process only")
        _AuditKey.value = secrets.token_bytes(32)
    settings.admission.server = kopf.WebhookServer(
        addr=config.addr, port=config.port, certfile=config.certfile, pkeyfile=config.keyfile
    )


# Fail open (the configurations say so): with the operator down, Model writes still go through,
# unstamped or unproven, and the status says "unknown" rather than blocking GitOps. The handlers
# are async: they never wait behind handlers or verifications in Kopf's thread pool, and any
# failure of theirs allows the request (the chart's configurations, not Kopf, set the policy).
@kopf.on.mutate(GROUP, VERSION, PLURAL_MODELS, id=AUDIT_WEBHOOK, operations=["CREATE", "UPDATE"])
async def stamp_audit(
    userinfo: kopf.UserInfo,
    patch: kopf.Patch,
    operation: str = "",
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    **_: Any,
) -> None:
    """Record who created the Model and who last changed its spec (annotations and proofs)."""
    key = audit_key()
    if key is None:
        return
    try:
        stamps = audit_annotations(
            operation=operation,
            username=str(userinfo.get("username", "")),
            operator_username=WebhookConfig.from_env().operator_username,
            old=dict(old) if old is not None else None,
            new=dict(new) if new is not None else {},
            key=key,
            now=int(time.time()),
        )
    except Exception as err:  # never fail a write: unstamped reads `unknown`
        log.warning(f"audit stamping failed, Model {operation} allowed unstamped: {err!r}")
        return
    for name, value in stamps.items():
        patch.metadata.annotations[name] = value


# Own threads for the guard's LIST, and a deadline under the configuration's timeoutSeconds.
GUARD_EXECUTOR: Final = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlkube-guard")
GUARD_SECONDS: Final = 3.0


@kopf.on.validate(GROUP, VERSION, PLURAL_MODELS, id=DELETE_GUARD_WEBHOOK, operations=["DELETE"])
async def guard_model_delete(body: kopf.Body, userinfo: kopf.UserInfo, **_: Any) -> None:
    """Refuse to delete a Model that an endpoint still serves, naming the endpoints. When the
    endpoints cannot be listed (API errors, no connection, too slow) the delete is allowed:
    a guard that cannot see must not wedge deletions (fail open, like the configuration)."""
    if userinfo.get("username") in EXEMPT_DELETERS:
        return
    name, namespace = body["metadata"]["name"], body["metadata"].get("namespace")
    try:
        users = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(GUARD_EXECUTOR, _users, namespace, name),
            GUARD_SECONDS,
        )
    except Exception as err:  # any failure (API error, no connection, deadline): allow
        log.warning(f"delete guard cannot list endpoints, {namespace}/{name} allowed: {err!r}")
        return
    if users:
        raise kopf.AdmissionError(
            f"Model {namespace}/{name} is deployed by {' and '.join(users)}: "
            "remove it from their deployments (or delete them) first",
            code=409,
        )


def _users(namespace: str | None, name: str) -> list[str]:
    """`Kind a, b` per endpoint kind whose deployments name the Model (one LIST per kind)."""
    found = []
    for kind in ENDPOINT_KINDS:
        names = referencing_endpoints(kube().list(API_VERSION, kind, namespace), name)
        if names:
            found.append(f"{kind} {', '.join(names)}")
    return found
