"""The chart's HA settings rendered by the real helm: two replicas by default, all running with
leader election and the Lease timing from values, a PodDisruptionBudget only when there is a
replica to spare, Recreate only for a single replica, and the Lease rights bound in the release
namespace only. (The failover itself: test_operator_failover.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.helm import by_kind, helm_binary, lint_chart, render_chart


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_two_replicas_with_leader_election_and_a_budget_by_default(helm: Path) -> None:
    objects = render_chart(helm, "ops")
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # rolling: webhooks stay served
    container = operator_container(objects)
    assert "--leader-election" in container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["MLKUBE_LEASE_DURATION_SECONDS"], env["MLKUBE_LEASE_RENEW_SECONDS"],
            env["MLKUBE_LEASE_RETRY_SECONDS"]) == ("15", "10", "2")  # fmt: skip
    assert env["MLKUBE_NAMESPACE"] == "ops"  # where the Lease lives
    (budget,) = by_kind(objects, "PodDisruptionBudget")
    assert budget["metadata"]["namespace"] == "ops"
    assert budget["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_a_single_replica_has_no_budget_and_is_recreated(helm: Path) -> None:
    objects = render_chart(helm, "ops", ["replicas=1"])
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert by_kind(objects, "PodDisruptionBudget") == []  # would block every drain


def test_lease_rights_are_bound_in_the_release_namespace_only(helm: Path) -> None:
    objects = render_chart(helm, "ops", ["watchNamespaces={team-a}"])
    roles = {r["metadata"]["name"]: r["rules"] for r in by_kind(objects, "ClusterRole")}
    with_leases = {name for name, rules in roles.items()
                   if any("leases" in rule["resources"] for rule in rules)}  # fmt: skip
    assert with_leases == {"mlkube-operator-audit-key"}
    bound = [b for b in by_kind(objects, "RoleBinding")
             if b["roleRef"]["name"] == "mlkube-operator-audit-key"]  # fmt: skip
    assert [b["metadata"]["namespace"] for b in bound] == ["ops"]
    assert not [b for b in by_kind(objects, "ClusterRoleBinding")
                if b["roleRef"]["name"] == "mlkube-operator-audit-key"]  # fmt: skip


@pytest.mark.parametrize("values", [["replicas=3"], ["replicas=1"]], ids=["three", "one"])
def test_chart_lints_with_replica_counts(helm: Path, values: list[str]) -> None:
    assert "0 chart(s) failed" in lint_chart(helm, values)
