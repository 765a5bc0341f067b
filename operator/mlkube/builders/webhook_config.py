"""The admission webhook configurations: one definition for the chart, the dev cluster and tests.

The operator only serves the webhooks; it never creates or patches configurations. The Helm
chart ships them with a `service` client config (kube-apiserver resolves a Service reference
itself; a URL would go through the host's DNS, where `*.svc` does not exist), so
`helm uninstall` removes them with the release. The dev cluster and the integration tests create
the same webhooks with a loopback URL, as the cluster admin.

No webhook can wedge the cluster: all fail open (an operator that is down, restarting or
uninstalled blocks no write and no delete), the namespace controller is never sent to the guard
(namespace deletion does not wait for the operator), and the timeout is short. Fail-open stamps
are detectable: the operator trusts only stamps carrying a valid proof (`builders.audit_proof`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mlkube.contract import (
    GROUP,
    PLURAL_BATCH_ENDPOINTS,
    PLURAL_ENVIRONMENTS,
    PLURAL_MODELS,
    PLURAL_ONLINE_ENDPOINTS,
    PLURAL_PIPELINES,
    VERSION,
)

# The handler ids in handlers/webhooks.py and handlers/environment_webhooks.py; Kopf serves
# each at "/<id>" on the webhook port.
AUDIT_WEBHOOK: Final = "audit"
DELETE_GUARD_WEBHOOK: Final = "delete-guard"
ENVIRONMENT_DELETE_GUARD_WEBHOOK: Final = "environment-delete-guard"
ENVIRONMENT_REFERENCES_WEBHOOK: Final = "environment-references"
# The kinds whose specs reference Environments (deployments[].environment, steps[].environment).
ENVIRONMENT_USER_PLURALS: Final = (
    PLURAL_ONLINE_ENDPOINTS,
    PLURAL_BATCH_ENDPOINTS,
    PLURAL_PIPELINES,
)
# Only writes that carry a reference reach the operator (CEL on the admitted object).
HAS_ENVIRONMENT_REFERENCE: Final = (
    "(has(object.spec.deployments) && object.spec.deployments.exists(d, has(d.environment)))"
    " || (has(object.spec.steps) && object.spec.steps.exists(s, has(s.environment)))"
)
CONFIGURATION_NAME: Final = f"webhooks.{GROUP}"
SERVICE_NAME: Final = "mlkube-webhook"
WEBHOOK_PORT: Final = 9443
TIMEOUT_SECONDS: Final = 5
# Deleting a namespace is a deliberate act, and it must never wait for the operator.
NAMESPACE_DELETERS: Final = (
    "system:serviceaccount:kube-system:namespace-controller",
    "system:kube-controller-manager",
)


def service_client(namespace: str, *, port: int = WEBHOOK_PORT) -> dict[str, Any]:
    """A clientConfig (without path) for the chart's webhook Service."""
    return {"service": {"namespace": namespace, "name": SERVICE_NAME, "port": port}}


def url_client(base_url: str) -> dict[str, Any]:
    """A clientConfig (without path) for a webhook server on loopback: dev cluster and tests."""
    return {"url": base_url.rstrip("/")}


def build_webhook_configurations(
    client: dict[str, Any],
    *,
    ca_bundle: str | None,
    name: str = CONFIGURATION_NAME,
    namespaces: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The Mutating (audit stamps) and Validating (Model and Environment DELETE guards, new
    references to archived Environments) configurations.

    `ca_bundle` is base64 PEM (None when cert-manager injects it); `namespaces` restricts the
    webhooks to the namespaces the operator watches (empty: all).
    """
    audit = _webhook(
        AUDIT_WEBHOOK, client, ca_bundle, namespaces,
        operations=["CREATE", "UPDATE"], side_effects="None",
    )  # fmt: skip
    guard = _webhook(
        DELETE_GUARD_WEBHOOK, client, ca_bundle, namespaces,
        operations=["DELETE"], side_effects="None",
    )  # fmt: skip
    environment_guard = _webhook(
        ENVIRONMENT_DELETE_GUARD_WEBHOOK, client, ca_bundle, namespaces,
        operations=["DELETE"], side_effects="None",
        name=f"delete-guard.{PLURAL_ENVIRONMENTS}.{GROUP}", resources=[PLURAL_ENVIRONMENTS],
    )  # fmt: skip
    references = _webhook(
        ENVIRONMENT_REFERENCES_WEBHOOK, client, ca_bundle, namespaces,
        operations=["CREATE", "UPDATE"], side_effects="None",
        name=f"{ENVIRONMENT_REFERENCES_WEBHOOK}.{GROUP}", resources=list(ENVIRONMENT_USER_PLURALS),
    )  # fmt: skip
    not_namespace_deletion = {
        "name": "not-namespace-deletion",
        "expression": " && ".join(
            f"request.userInfo.username != '{user}'" for user in NAMESPACE_DELETERS
        ),
    }
    guard["matchConditions"] = [not_namespace_deletion]
    environment_guard["matchConditions"] = [dict(not_namespace_deletion)]
    references["matchConditions"] = [
        {"name": "has-environment-reference", "expression": HAS_ENVIRONMENT_REFERENCE}
    ]
    return [
        _configuration("MutatingWebhookConfiguration", name, [audit]),
        _configuration(
            "ValidatingWebhookConfiguration", name, [guard, environment_guard, references]
        ),
    ]


def _configuration(kind: str, name: str, webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "mlkube"}},
        "webhooks": webhooks,
    }


def _webhook(
    handler_id: str,
    client: dict[str, Any],
    ca_bundle: str | None,
    namespaces: Sequence[str],
    *,
    operations: list[str],
    side_effects: str,
    name: str | None = None,
    resources: list[str] | None = None,
) -> dict[str, Any]:
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in client.items()}
    if "service" in config:
        config["service"]["path"] = f"/{handler_id}"
    else:
        config["url"] = f"{config['url']}/{handler_id}"
    if ca_bundle:
        config["caBundle"] = ca_bundle
    webhook: dict[str, Any] = {
        "name": name or f"{handler_id}.{PLURAL_MODELS}.{GROUP}",
        "admissionReviewVersions": ["v1"],
        "clientConfig": config,
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "sideEffects": side_effects,
        "timeoutSeconds": TIMEOUT_SECONDS,
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "resources": resources or [PLURAL_MODELS],
                "operations": operations,
                "scope": "Namespaced",
            }
        ],
    }
    if namespaces:
        webhook["namespaceSelector"] = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": sorted(namespaces),
                }
            ]
        }
    return webhook
