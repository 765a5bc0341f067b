"""The pre-hash child names and when the old children may go (pure)."""

from __future__ import annotations

from typing import Any

from mlkube.builders.endpoint_upgrade import (
    legacy_child_names,
    legacy_keys_secret_name,
    legacy_to_keep,
    rollout_complete,
)
from mlkube.builders.names import deployment_name, keys_secret_name, router_name


def deployment(available: bool, generation: int = 2, observed: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": observed, "replicas": 2, "updatedReplicas": 2,
            "availableReplicas": 2 if available else 1,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }  # fmt: skip


def test_legacy_names_are_the_plain_joins_the_old_operator_used() -> None:
    names = legacy_child_names("credit", ["blue", "green"])
    assert names == {"credit-blue", "credit-green", "credit-router", "credit-keys"}
    assert legacy_keys_secret_name("credit") == "credit-keys"
    assert not names & {deployment_name("credit", "blue"), router_name("credit"),
                        keys_secret_name("credit"), "credit"}  # fmt: skip


def test_old_children_wait_for_every_new_deployment() -> None:
    stale = {"credit-blue", "credit-green-removed"}
    legacy = legacy_child_names("credit", ["blue"])
    assert legacy_to_keep(stale, legacy, [deployment(True), deployment(False)]) == {"credit-blue"}
    assert legacy_to_keep(stale, legacy, [deployment(True), None]) == {"credit-blue"}
    assert legacy_to_keep(stale, legacy, [deployment(True, observed=1)]) == {"credit-blue"}
    assert legacy_to_keep(stale, legacy, [deployment(True), deployment(True)]) == set()
    assert rollout_complete([])  # nothing to wait for


def test_nothing_is_kept_when_no_old_child_is_stale() -> None:
    assert legacy_to_keep({"other"}, legacy_child_names("credit", ["blue"]), [None]) == set()
