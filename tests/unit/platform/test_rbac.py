"""Least privilege of the operator's RBAC (builders/rbac.py, the chart's generated roles): a broad
rule that comes back fails here, not in a security review."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

import mlkube.handlers.main  # noqa: F401  (registers every handler with Kopf's default registry)
from mlkube.builders.rbac import (
    AUDIT_KEY_RULES,
    BUILD_NAMESPACE_RULES,
    CLUSTER_RULES,
    LEADER_LEASE_RULES,
    NAMESPACED_RULES,
    OPERATOR_RULES,
    OWN_NAMESPACE_RULES,
    WATCHED_BY_KOPF,
    build_chart_roles,
)

ALL_RULES = OPERATOR_RULES + OWN_NAMESPACE_RULES


def grants(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def watched_by_handlers() -> set[tuple[str, str]]:
    """(group, plural) of every resource a registered Kopf handler watches or serves."""
    registry = kopf.get_default_registry()
    handlers: list[Any] = []
    for sub in (registry._watching, registry._changing, registry._spawning, registry._indexing):
        handlers.extend(sub.get_all_handlers())
    return {
        (h.selector.group or "", h.selector.plural or h.selector.any_name)
        for h in handlers
        if h.selector
    }


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: ",".join(r["resources"]))
def test_no_wildcards(rule: dict[str, Any]) -> None:
    for field in ("apiGroups", "resources", "verbs", "resourceNames"):
        assert "*" not in rule.get(field, []), rule
    assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])


def test_secrets_are_never_listed_or_watched() -> None:
    assert not {"list", "watch"} & grants(ALL_RULES, "", "secrets")
    # Reading the audit key is limited to that one Secret.
    (get_rule,) = [r for r in AUDIT_KEY_RULES if "get" in r["verbs"]]
    assert get_rule["resourceNames"] == ["mlkube-audit-key"]


def test_no_rights_on_webhook_configurations_or_rbac() -> None:
    groups = {g for rule in ALL_RULES for g in rule["apiGroups"]}
    assert "admissionregistration.k8s.io" not in groups  # the chart ships them
    assert "rbac.authorization.k8s.io" not in groups


def test_every_watch_matches_a_handler_and_every_handler_may_watch() -> None:
    watched = watched_by_handlers()
    assert ("mlkube.dev", "models") in watched and ("apps", "deployments") in watched
    for rule in ALL_RULES:
        if "watch" not in rule["verbs"]:
            continue
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) in watched | WATCHED_BY_KOPF, (group, resource)
    for group, resource in watched:
        assert {"list", "watch"} <= grants(NAMESPACED_RULES, group, resource), (group, resource)


def test_cluster_scoped_rules_hold_only_cluster_scoped_kinds() -> None:
    """The namespaced role is what a RoleBinding grants per watched namespace; cluster-scoped
    kinds there would be silently useless, namespaced ones in the cluster role too broad."""
    cluster_kinds = {(g, r) for rule in CLUSTER_RULES for g in rule["apiGroups"]
                     for r in rule["resources"]}  # fmt: skip
    assert cluster_kinds == set(WATCHED_BY_KOPF)
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in CLUSTER_RULES)


def test_chart_roles_split_the_rules_without_adding_any() -> None:
    roles = {role["metadata"]["name"]: role["rules"] for role in build_chart_roles()}
    assert roles == {
        "mlkube-operator-cluster": CLUSTER_RULES,
        "mlkube-operator": NAMESPACED_RULES,
        "mlkube-operator-audit-key": AUDIT_KEY_RULES + LEADER_LEASE_RULES,
        "mlkube-operator-build": BUILD_NAMESPACE_RULES,
    }


def test_the_build_namespace_role_reads_logs_and_deletes_nothing() -> None:
    """Build Jobs are shared by key and removed by their TTL; pod logs are readable only in
    the build namespace (never in a user's namespace); no list/watch of Jobs there either."""
    assert grants(NAMESPACED_RULES, "", "pods/log") == set()
    assert grants(BUILD_NAMESPACE_RULES, "", "pods/log") == {"get"}
    assert grants(BUILD_NAMESPACE_RULES, "batch", "jobs") == {"get", "create"}
    assert not any("delete" in r["verbs"] for r in BUILD_NAMESPACE_RULES)
    assert grants(BUILD_NAMESPACE_RULES, "", "secrets") == {"get"}


def test_the_leader_lease_is_renewed_by_name_only() -> None:
    """Leases are read and written by name in the operator's own namespace (the role is bound
    there only); creation cannot be limited by name in RBAC. No list/watch/delete/update."""
    assert grants(ALL_RULES, "coordination.k8s.io", "leases") == {"get", "patch", "create"}
    (named,) = [r for r in LEADER_LEASE_RULES if "get" in r["verbs"]]
    assert named["resourceNames"] == ["mlkube-operator-leader"]
    assert not any(r["apiGroups"] == ["coordination.k8s.io"] for r in OPERATOR_RULES)


# Every right the operator holds and why: a verb that is added or kept without a user here
# fails, so rights cannot pile up. (Verified against the code and Kopf's sources; the
# integration tests run the operator under exactly these rules, which proves nothing needed is
# missing.) Children = what endpoints own, written by controllers/endpoint_ownership.py.
CHILD_REASONS = {
    "get": "read before every write (ownership check, NameConflict)",
    "list": "listed by label for prune and readiness",
    "create": "created when absent (POST, never force-apply over a stranger's object)",
    "patch": "server-side apply with uid precondition; field-ownership handover after create",
    "delete": "prune and release, with uid precondition",
}
WHY: dict[tuple[str, str], dict[str, str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {
        "list": "Kopf's CRD observer", "watch": "Kopf's CRD observer",
    },
    ("", "namespaces"): {
        "list": "Kopf's namespace observer (watchNamespaces)", "watch": "the same",
    },
    # Before the per-kind entries below: a later entry for the same kind takes precedence.
    ("mlkube.dev", "environments"): {
        "list": "Environment webhooks: DELETE guard (what references resolve to), archived check",
    },
    **{
        ("mlkube.dev", kind): {
            "get": "controllers read the object afresh each pass",
            "list": "Kopf watch-stream start; endpoints_waiting_for, deployedBy repair",
            "watch": "Kopf handlers",
            "patch": "Kopf progress annotations; dropping the legacy finalizer",
            # registerModel steps: POST only, ownerless (a model outlives its run).
            **({"create": "registerModel pipeline steps"} if kind == "models" else {}),
        }
        for kind in ("models", "onlineendpoints", "batchjobs", "pipelineruns", "environments")
    },
    **{
        ("mlkube.dev", f"{kind}/status"): {"patch": "status merge patches (ours and Kopf's)"}
        for kind in ("models", "onlineendpoints", "batchjobs", "pipelineruns", "environments")
    },
    **{
        ("mlkube.dev", f"{kind}/finalizers"): {
            "update": "blockOwnerDeletion owner references under "
            "OwnerReferencesPermissionEnforcement"
        }
        for kind in ("models", "onlineendpoints", "batchjobs", "pipelineruns")
    },
    ("mlkube.dev", "batchendpoints"): {
        "get": "each pass reads the endpoint afresh",
        "list": "Kopf watch-stream start; Model delete guard, deployedBy repair",
        "watch": "batch_endpoint_lifecycle handler",
    },
    ("mlkube.dev", "batchendpoints/status"): {"patch": "status merge patches"},
    ("mlkube.dev", "eventsinks"): {
        "get": "a sink's status pass reads it afresh",
        "list": "Kopf watch-stream start; every sink registered before the first event",
        "watch": "event_sink_changed handler",
    },
    ("mlkube.dev", "eventsinks/status"): {"patch": "delivery state, on change, rate-limited"},
    ("mlkube.dev", "batchendpoints/finalizers"): {
        "update": "blockOwnerDeletion on scheduled BatchJobs",
    },
    ("mlkube.dev", "batchjobs"): {
        "get": "controllers read the object afresh each pass",
        "list": "Kopf watch-stream start; a schedule's jobs by label (Forbid, Replace, history)",
        "watch": "Kopf handlers; scheduled_job_changed (finished jobs trim the history)",
        "create": "scheduled runs, POST only (409: already fired)",
        "patch": "Kopf progress annotations; spec.cancel on the running job (Replace)",
        "delete": "history limits, with uid precondition",
    },
    ("coordination.k8s.io", "leases"): {
        "get": "leader election reads the Lease every retry period",
        "patch": "acquire, renew and release, with resourceVersion precondition",
        "create": "the Lease on the very first start",
    },
    ("", "events"): {"create": "kopf.event posts core/v1 Events (POST only)"},
    ("apps", "deployments"): {**CHILD_REASONS, "watch": "child_deployment_changed handler"},
    ("", "services"): CHILD_REASONS,
    ("", "configmaps"): CHILD_REASONS,
    ("", "secrets"): {
        "get": "keys Secret (current and pre-hash name) by name; audit key by name; "
        "EventSink signing keys by name",
        "create": "keys Secret once; audit key on first start",
        "delete": "prune of the keys Secret, with uid precondition",
    },
    ("autoscaling", "horizontalpodautoscalers"): CHILD_REASONS,
    ("policy", "poddisruptionbudgets"): CHILD_REASONS,
    ("gateway.networking.k8s.io", "httproutes"): CHILD_REASONS,
    ("gateway.networking.k8s.io", "grpcroutes"): CHILD_REASONS,
    ("monitoring.coreos.com", "servicemonitors"): CHILD_REASONS,
    ("monitoring.coreos.com", "prometheusrules"): CHILD_REASONS,
    ("batch", "jobs"): {
        "get": "pvc:// verification Job by name",
        "create": "started once",
        "list": "a BatchJob's Jobs by label; Kopf watch-stream start",
        "watch": "batch_step_changed handler (a step finished: take the next one)",
        "patch": "spec.suspend of a BatchJob's Jobs (suspend, cancel, error threshold)",
        "delete": "a PipelineRun's running step Jobs on cancel and failFast (uid precondition)",
    },
    ("mlkube.dev", "pipelines"): {
        "get": "a PipelineRun snapshots its Pipeline's spec; each Pipeline pass reads it afresh",
        "list": "Kopf watch-stream start",
        "watch": "pipeline_lifecycle handler",
    },
    ("mlkube.dev", "pipelines/status"): {"patch": "status merge patches"},
    ("mlkube.dev", "pipelines/finalizers"): {
        "update": "blockOwnerDeletion on the PipelineRuns schedules and triggers start",
    },
    ("", "pods/log"): {"get": "an environment build's package line and failure log tail"},
    ("", "pods"): {
        "list": "Job termination messages (verification, environment builds), router and "
        "drift-sidecar pods by label",
        "watch": "serving and router pods by label: why they fail, shown on the endpoint",
    },
}  # fmt: skip
WHY[("mlkube.dev", "pipelineruns")] |= {
    "create": "scheduled and triggered runs, POST only (409: already fired)",
    "delete": "schedule history limits, with uid precondition",
}


def test_every_granted_verb_has_a_reason_and_every_reason_a_grant() -> None:
    granted = {
        (group, resource, verb)
        for rule in ALL_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    explained = {(g, r, v) for (g, r), verbs in WHY.items() for v in verbs}
    assert granted - explained == set(), "granted without a reason"
    assert explained - granted == set(), "a reason for a right no longer granted"


@pytest.mark.parametrize(
    ("group", "resource", "verb"),
    [
        ("", "secrets", "patch"),  # the keys Secret is create-only
        ("", "configmaps", "watch"),  # run snapshots are read by name
        ("mlkube.dev", "batchendpoints", "patch"),  # watched for events only, never annotated
        ("", "pods", "get"),
        ("events.k8s.io", "events", "create"),  # Kopf posts core/v1 Events
        ("mlkube.dev", "models/status", "get"),
        ("", "namespaces", "get"),  # Kopf's observers list and watch
        ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    ],
)
def test_unused_rights_stay_removed(group: str, resource: str, verb: str) -> None:
    assert verb not in grants(ALL_RULES, group, resource)
    assert not any("events.k8s.io" in rule["apiGroups"] for rule in ALL_RULES)
