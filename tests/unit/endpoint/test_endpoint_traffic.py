"""The traffic fast path's pure half: which spec changes are traffic-only, and that its router
ConfigMap is the full pass's, byte for byte (the two must never drift)."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.endpoint_traffic import build_traffic_configmap, decide_traffic_change
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig


def spec_doc(**overrides: Any) -> dict[str, Any]:
    """The sample blue/green spec as stored (camelCase), top-level fields replaced."""
    doc: dict[str, Any] = {
        "deployments": [
            {"name": "blue", "model": "credit-risk-v3", "replicas": 2},
            {"name": "green", "model": "credit-risk-v4", "requestSettings": {"timeoutSeconds": 40}},
        ],
        "traffic": {"blue": 70, "green": 30},
    }
    return {**doc, **overrides}


APPLIED: dict[str, Any] = {
    "observedGeneration": 3,
    "traffic": {"blue": 70, "green": 30},
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "Available"},
        {"type": "Degraded", "status": "False", "reason": "AsExpected"},
    ],
}
ROLLOUT = {
    "stable": "blue",
    "candidate": "green",
    "steps": [{"setWeight": 10}, {"pause": {"duration": "1m"}}],
}


def decide(
    old: dict[str, Any] | None, new: dict[str, Any], status: dict[str, Any] | None = None
) -> tuple[bool, str]:
    decision = decide_traffic_change(old, new, APPLIED if status is None else status)
    return decision.fast, decision.reason


@pytest.mark.parametrize(
    "change",
    [
        {"traffic": {"blue": 40, "green": 60}},
        {"mirror": {"green": 10}, "traffic": {"blue": 100, "green": 0}},
        {"traffic": {"blue": 100, "green": 0}},
        {"traffic": {"blue": 100}},  # a key dropped from the split
    ],
)
def test_a_change_of_traffic_or_mirror_alone_takes_the_fast_path(change: dict[str, Any]) -> None:
    assert decide(spec_doc(), spec_doc(**change)) == (True, "")


def test_a_mirror_only_change_takes_the_fast_path() -> None:
    old = spec_doc(traffic={"blue": 100, "green": 0}, mirror={"green": 5})
    new = spec_doc(traffic={"blue": 100, "green": 0}, mirror={"green": 50})
    assert decide(old, new) == (True, "")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"deployments": [{"name": "blue", "model": "credit-risk-v4"}]}, "deployments"),
        ({"auth": {"mode": "key"}, "traffic": {"blue": 10, "green": 90}}, "auth"),
        ({"trafficBackend": "gateway-api"}, "trafficBackend"),
        ({"rollout": ROLLOUT, "traffic": {"blue": 10, "green": 90}}, "rollout"),
    ],
)
def test_any_other_key_that_changes_with_it_takes_the_full_pass(
    change: dict[str, Any], why: str
) -> None:
    fast, reason = decide(spec_doc(), spec_doc(**change))
    assert not fast and why in reason


def test_no_previous_spec_or_no_change_takes_the_full_pass() -> None:
    assert decide(None, spec_doc())[0] is False  # create, resume
    assert decide(spec_doc(), spec_doc()) == (False, "spec unchanged")


def test_a_rollout_owns_the_split_so_its_traffic_change_takes_the_full_pass() -> None:
    with_rollout = spec_doc(rollout=ROLLOUT)
    changed = spec_doc(rollout=ROLLOUT, traffic={"blue": 20, "green": 80})
    assert decide(with_rollout, changed) == (False, "spec.rollout: a rollout owns the split")
    # spec.rollout removed meanwhile but status says one still runs: still the full pass
    for phase in ("Progressing", "Paused"):
        running = {**APPLIED, "rollout": {"revision": "r1", "phase": phase}}
        fast, reason = decide(spec_doc(), spec_doc(traffic={"blue": 1, "green": 99}), running)
        assert (fast, reason) == (False, "a rollout is running")
    done = {**APPLIED, "rollout": {"revision": "r1", "phase": "Promoted"}}
    assert decide(spec_doc(), spec_doc(traffic={"blue": 1, "green": 99}), done) == (True, "")


def test_a_gateway_endpoint_takes_the_full_pass() -> None:
    old = spec_doc(trafficBackend="gateway-api")
    new = spec_doc(trafficBackend="gateway-api", traffic={"blue": 50, "green": 50})
    assert decide(old, new)[0] is False


@pytest.mark.parametrize(
    "status",
    [
        {},  # never reconciled
        {**APPLIED, "observedGeneration": 0},
        {
            **APPLIED,
            "conditions": [{"type": "Ready", "status": "False", "reason": "ModelNotReady"}],
        },
        {**APPLIED, "conditions": [{"type": "Degraded", "status": "True", "reason": "X"}]},
    ],
)
def test_a_last_pass_that_did_not_apply_takes_the_full_pass(status: dict[str, Any]) -> None:
    assert decide(spec_doc(), spec_doc(traffic={"blue": 0, "green": 100}), status)[0] is False


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"traffic": {"blue": 40, "green": 60}},
        {"traffic": {"blue": 100, "green": 0}, "mirror": {"green": 25}},
        {"traffic": {"blue": 100, "green": 0}, "mirror": {"green": 0}},
        {"auth": {"mode": "key"}},
    ],
)
@pytest.mark.parametrize("revision", [1, 1764562800])
def test_the_fast_path_configmap_is_the_full_pass_configmap(
    owner: EndpointRef,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
    change: dict[str, Any],
    revision: int,
) -> None:
    spec = OnlineEndpointSpec.model_validate(spec_doc(**change))
    children = build_endpoint_children(
        owner, spec, models, config, ["key-1"], router_revision=revision, push_key="push"
    )
    full = [c for c in children if c["kind"] == "ConfigMap"]
    assert full == [build_traffic_configmap(owner, spec, config, revision)]
