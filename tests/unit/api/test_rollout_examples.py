"""examples/rollouts/ (the dev-cluster rollout demo, docs/rollouts.md §8) stays valid against the
API: credit-risk v4 over v3 with a 10 % -> 50 % -> 100 % plan gated on analysis, and the same
plan with the broken candidate, whose scoring script fails every prediction."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.kinds import parse_object

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "rollouts"


def load(name: str) -> dict[str, object]:
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(doc, dict)
    parse_object(doc)  # the whole object, as the API server's schema and CEL rules see it
    return doc


def test_the_healthy_plan_is_10_50_100_with_analysis_gates() -> None:
    spec = OnlineEndpointSpec.model_validate(load("credit-v4-rollout.yaml")["spec"])
    rollout = spec.rollout
    assert rollout is not None
    assert (rollout.stable, rollout.candidate) == ("blue", "green")
    assert {d.name: d.model for d in spec.deployments} == {
        "blue": "credit-risk-v3",
        "green": "credit-risk-v4",
    }
    weights = [s.set_weight for s in rollout.steps if s.set_weight is not None]
    assert weights == [10, 50] and spec.traffic == {"blue": 0, "green": 100}  # promotion: 100
    gates = [s.analysis.metrics for s in rollout.steps if s.analysis is not None]
    assert gates == [["errors", "latency"], ["errors", "latency"]]
    assert [type(s.set_weight) for s in rollout.steps[::2]] == [int, int]  # gate after each


def test_the_broken_plan_differs_only_by_its_candidate_model() -> None:
    healthy = load("credit-v4-rollout.yaml")["spec"]
    broken = load("credit-v4b-rollout.yaml")["spec"]
    assert isinstance(healthy, dict) and isinstance(broken, dict)
    assert broken["rollout"] == healthy["rollout"]
    assert broken["traffic"] == healthy["traffic"]
    assert [d["model"] for d in broken["deployments"]] == ["credit-risk-v3", "credit-risk-v4b"]


def test_the_broken_candidate_fails_every_prediction() -> None:
    spec = importlib.util.spec_from_file_location(
        "score", EXAMPLES / "credit-risk-v4b" / "score.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    with pytest.raises(RuntimeError, match="income_ratio"):
        module.run('{"data": [[0.0]]}')
