"""The operator's RBAC: the single source for the Helm chart's ClusterRole and for the
integration tests, which run the operator under exactly these rights (least privilege, proven)."""

from __future__ import annotations

from typing import Any

from mlkube.contract import (
    GROUP,
    PLURAL_BATCH_ENDPOINTS,
    PLURAL_BATCH_JOBS,
    PLURAL_ENVIRONMENTS,
    PLURAL_EVENT_SINKS,
    PLURAL_MODELS,
    PLURAL_ONLINE_ENDPOINTS,
    PLURAL_PIPELINE_RUNS,
    PLURAL_PIPELINES,
)

# Only kinds that exist: pipelines get their rights with their CRDs. BatchEndpoints have their
# own rules below (watched for events only, never annotated by Kopf).
KINDS = (PLURAL_MODELS, PLURAL_ONLINE_ENDPOINTS, PLURAL_BATCH_JOBS, PLURAL_PIPELINE_RUNS)
AUDIT_KEY_SECRET = "mlkube-audit-key"  # handlers/webhooks.py keeps the audit proof key here
LEADER_LEASE = "mlkube-operator-leader"  # handlers/leadership.py: which replica reconciles
# Children: created, applied, listed by label for pruning, deleted; watched only where a
# handler watches them (Deployments: endpoint readiness).
CHILD = ["get", "list", "create", "patch", "delete"]

# Cluster-scoped: what Kopf's own observers read (served CRDs; namespaces, when it watches a
# list of namespaces), by list and watch only (kopf/_core/reactor/observation.py). Always
# bound cluster-wide.
CLUSTER_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]
# (group, resource) watched by Kopf itself rather than by one of our handlers.
WATCHED_BY_KOPF = frozenset(
    {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")}
)

# Namespaced: bound cluster-wide, or with a RoleBinding per watched namespace (chart value
# watchNamespaces), which grants nothing outside those namespaces.
NAMESPACED_RULES: list[dict[str, Any]] = [
    # Its own kinds: read, annotate (Kopf progress), drop old finalizers; status is separate.
    {"apiGroups": [GROUP], "resources": list(KINDS), "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{k}/status" for k in KINDS], "verbs": ["patch"]},
    # Children's blockOwnerDeletion owner references, where OwnerReferencesPermissionEnforcement
    # admission is on (OpenShift and hardened clusters), need update on the owner's finalizers.
    {
        "apiGroups": [GROUP],
        "resources": [f"{k}/finalizers" for k in KINDS],
        "verbs": ["update"],
    },
    # BatchEndpoints and Pipelines: read and watched (events only: no Kopf annotations, so no
    # patch); status written; owners of the BatchJobs and PipelineRuns their schedules and
    # triggers start (blockOwnerDeletion).
    {
        "apiGroups": [GROUP],
        "resources": [PLURAL_BATCH_ENDPOINTS, PLURAL_PIPELINES],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": [GROUP],
        "resources": [f"{PLURAL_BATCH_ENDPOINTS}/status", f"{PLURAL_PIPELINES}/status"],
        "verbs": ["patch"],
    },
    {
        "apiGroups": [GROUP],
        "resources": [f"{PLURAL_BATCH_ENDPOINTS}/finalizers", f"{PLURAL_PIPELINES}/finalizers"],
        "verbs": ["update"],
    },
    # EventSinks (docs/notifications.md): read and watched (events only: no Kopf annotations,
    # so no patch), their delivery state written to status. Never owners of anything. Their
    # signing keys are read from Secrets by name (the `get` on secrets below, never a list), a
    # `ref` Service by name (`get` on services below).
    {"apiGroups": [GROUP], "resources": [PLURAL_EVENT_SINKS], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL_EVENT_SINKS}/status"], "verbs": ["patch"]},
    # Environments (docs/environments.md): Kopf handlers (progress annotations: patch), status
    # written. They own nothing (their build Jobs are shared by namespaces): no finalizers.
    {
        "apiGroups": [GROUP],
        "resources": [PLURAL_ENVIRONMENTS],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": [GROUP], "resources": [f"{PLURAL_ENVIRONMENTS}/status"], "verbs": ["patch"]},
    # Scheduled BatchJobs and triggered PipelineRuns (read, watched and patched through KINDS
    # above): created with POST only (a 409 means the time or the event already fired),
    # deleted past the history limits.
    {
        "apiGroups": [GROUP],
        "resources": [PLURAL_BATCH_JOBS, PLURAL_PIPELINE_RUNS],
        "verbs": ["create", "delete"],
    },
    # A PipelineRun's first pass reads its Pipeline by name to snapshot the spec.
    {"apiGroups": [GROUP], "resources": [PLURAL_PIPELINES], "verbs": ["get"]},
    # registerModel steps create Models (ownerless: a model outlives its run); never deleted.
    {"apiGroups": [GROUP], "resources": [PLURAL_MODELS], "verbs": ["create"]},
    # The Environment admission webhooks (handlers/environment_webhooks.py) read the namespace's
    # Environments (one LIST): which one a reference resolves to, whether it is archived.
    {"apiGroups": [GROUP], "resources": [PLURAL_ENVIRONMENTS], "verbs": ["list"]},
    # Kopf posts core/v1 Events (kopf/_cogs/clients/events.py: POST only, never events.k8s.io).
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    # Children of endpoints; Deployments are watched (readiness), nothing else is.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": [*CHILD, "watch"]},
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": CHILD},
    # Endpoint API-key and router config push key Secrets are read and pruned by name,
    # EventSink signing keys read by name: never listed or watched, so the operator cannot
    # enumerate the cluster's Secrets; keys it makes are created once, never written again
    # (create-only: no apply, no field-ownership patch), so no patch either.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "delete"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": CHILD},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": CHILD},
    # gateway-api endpoints' routes (the GRPCRoute only with a gRPC listener configured).
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "resources": ["httproutes", "grpcroutes"],
        "verbs": CHILD,
    },
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors", "prometheusrules"],
        "verbs": CHILD,
    },
    # pvc:// verification Jobs: read by name, created once (garbage-collected with their
    # Model). A BatchJob's Jobs: created once, listed by label and watched (progress), patched
    # only for spec.suspend (suspend, cancel, error threshold). A PipelineRun's step Jobs:
    # one per attempt, deleted (uid precondition) when the run is cancelled or fails fast.
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    # Verification Jobs' termination messages, router and drift-sidecar pod IPs, and why
    # serving pods fail (watched by label, for endpoint status): never read by name or changed.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
]
# In the operator's own namespace: the audit key Secret, read by name, created on first start.
# (Creation cannot be limited by name in RBAC.)
AUDIT_KEY_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
     "resourceNames": [AUDIT_KEY_SECRET]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
]  # fmt: skip
# Also in the operator's own namespace: the leader election Lease, read and renewed by name,
# created once. (Kopf peering would need its CRDs and cluster-wide rights instead.)
LEADER_LEASE_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
     "resourceNames": [LEADER_LEASE]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
]  # fmt: skip
OWN_NAMESPACE_RULES: list[dict[str, Any]] = AUDIT_KEY_RULES + LEADER_LEASE_RULES
# In the environment build namespace (MLKUBE_BUILD_NAMESPACE, default the operator's own;
# docs/environments.md §2.1), which need not be a watched namespace: build Jobs read by name
# and created (shared by key, never deleted: their TTL removes them), their inputs ConfigMap
# created then made owned by the Job (patch), the build pod found by its Job's label (list)
# and its report read: termination message from the pod status, the package line and a
# failure's log tail from pods/log. The push Secret's credentials, read by name, let the
# operator find a reusable build's tag in a registry that wants them.
BUILD_NAMESPACE_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
]
# No admissionregistration rights: the chart ships the webhook configurations and the operator
# only serves them (builders/webhook_config.py).
OPERATOR_RULES: list[dict[str, Any]] = CLUSTER_RULES + NAMESPACED_RULES + BUILD_NAMESPACE_RULES


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "mlkube"}},
        "rules": rules,
    }


def build_operator_cluster_role(name: str = "mlkube-operator") -> dict[str, Any]:
    """Every right in one ClusterRole: how the dev cluster and the integration tests bind it."""
    return _cluster_role(name, OPERATOR_RULES)


def build_chart_roles() -> list[dict[str, Any]]:
    """The chart's roles: cluster-scoped rights, namespaced rights (bound per namespace when
    watchNamespaces is set) and the own-namespace rights, audit key and leader Lease (bound in
    the release namespace)."""
    return [
        _cluster_role("mlkube-operator-cluster", CLUSTER_RULES),
        _cluster_role("mlkube-operator", NAMESPACED_RULES),
        # Bound in the release namespace; named for its first use (kept: bindings refer to it).
        _cluster_role("mlkube-operator-audit-key", OWN_NAMESPACE_RULES),
        # Bound in the environment build namespace.
        _cluster_role("mlkube-operator-build", BUILD_NAMESPACE_RULES),
    ]


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
