"""The operator's RBAC: the single source for the Helm chart's ClusterRole and for the
integration tests, which run the operator under exactly these rights (least privilege, proven)."""

from __future__ import annotations

from typing import Any

from mlkube.contract import GROUP

# Only kinds that exist: batch endpoints and pipelines get their rights with their CRDs.
KINDS = ("models", "onlineendpoints")
WEBHOOK_CONFIGURATION = f"webhooks.{GROUP}"
OWNED = ["get", "list", "watch", "create", "patch", "delete"]

OPERATOR_RULES: list[dict[str, Any]] = [
    # Its own kinds: read, annotate (Kopf progress), finalize; status is written separately.
    {"apiGroups": [GROUP], "resources": list(KINDS), "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{k}/status" for k in KINDS], "verbs": ["get", "patch"]},
    # Children's blockOwnerDeletion owner references, where OwnerReferencesPermissionEnforcement
    # admission is on (OpenShift and hardened clusters), need update on the owner's finalizers.
    {
        "apiGroups": [GROUP],
        "resources": ["models/finalizers", "onlineendpoints/finalizers"],
        "verbs": ["update"],
    },
    # Kopf: discovery of served CRDs, namespaces when cluster-wide, Events.
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    # Kopf keeps its own webhook configurations in sync with the served certificate: it may
    # create them (creation cannot be limited by name) but change only those two, by name.
    {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        "verbs": ["create"],
    },
    {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        "resourceNames": [WEBHOOK_CONFIGURATION],
        "verbs": ["get", "patch"],
    },
    # Children of endpoints, batch jobs and pipeline runs.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": OWNED},
    {"apiGroups": [""], "resources": ["services", "configmaps", "secrets"], "verbs": OWNED},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": OWNED},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": OWNED},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": OWNED},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": OWNED},
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors", "prometheusrules"],
        "verbs": OWNED,
    },
    # Readiness and drift summaries come from pods; verification results from Job pods.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
]


def build_operator_cluster_role(name: str = "mlkube-operator") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "mlkube"}},
        "rules": OPERATOR_RULES,
    }


def build_cluster_role_binding(
    name: str, role: str, user: str | None = None, service_account: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Bind `role` to a user (tests) or a (namespace, name) service account (chart)."""
    subject: dict[str, str]
    if service_account is not None:
        namespace, account = service_account
        subject = {"kind": "ServiceAccount", "namespace": namespace, "name": account}
    elif user is not None:
        subject = {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
    else:
        raise ValueError("a binding needs a user or a service account")
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }
