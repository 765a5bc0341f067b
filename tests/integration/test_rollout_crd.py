"""OnlineEndpoint spec.rollout against the real API server: the docs/rollouts.md §1 example is
admitted with its defaults filled in, every §1 rule is refused with its own message (no
operator: what `kubectl apply` meets), and status.rollout is written through the status
subresource as the operator writes it.

The pydantic side of the same rules: tests/unit/api/test_rollout_kind.py.
"""

from __future__ import annotations

import copy

import pytest

from mlkube.api import endpoint as ep
from mlkube.api import rollout as ro
from mlkube.api.rollout_status import RolloutStatus
from mlkube.contract import API_VERSION, KIND_ONLINE_ENDPOINT
from mlkube.k8s import Kube
from support.crd_checks import rejected
from support.rollouts import BROKEN, aborted_status, endpoint

pytestmark = pytest.mark.integration


def test_documented_rollout_is_admitted_with_defaults(kube: Kube, namespace: str) -> None:
    created = kube.create(endpoint("credit", namespace))
    rollout = created["spec"]["rollout"]
    assert [s for s in rollout["steps"]][:2] == [
        {"setWeight": 10},
        {"analysis": {"metrics": ["errors", "p99"]}},
    ]
    by_name = {m["name"]: m for m in rollout["metrics"]}
    p99 = by_name["p99"]
    assert (p99["interval"], p99["count"], p99["failureLimit"], p99["inconclusiveLimit"]) == (
        "30s", 1, 0, 0,
    )  # fmt: skip
    assert (p99["consecutiveErrorLimit"], p99["noDataPolicy"], p99["minSampleCount"]) == (
        4, "Inconclusive", 1,
    )  # fmt: skip
    assert by_name["errors"]["provider"]["builtin"] == {"type": "errorRate", "compare": "absolute"}
    assert by_name["prom"]["provider"]["prometheus"]["timeout"] == "5s"
    assert by_name["web"]["provider"]["web"]["jsonPath"] == "$.data[0].v"
    assert rollout["abortScaleDownDelay"] == "10m"


@pytest.mark.parametrize(("spec", "message"), BROKEN, ids=[f"{i}" for i in range(len(BROKEN))])
def test_each_rule_is_refused_with_its_message(
    kube: Kube, namespace: str, spec: dict[str, object], message: str
) -> None:
    obj = endpoint("credit", namespace)
    obj["spec"] = copy.deepcopy(spec)
    assert message in rejected(kube.create, obj)


def test_a_rollout_added_and_changed_later_is_checked_too(kube: Kube, namespace: str) -> None:
    obj = endpoint("credit", namespace)
    rollout = obj["spec"].pop("rollout")
    kube.create(obj)
    patched = kube.patch(
        API_VERSION, KIND_ONLINE_ENDPOINT, "credit", {"spec": {"rollout": rollout}}, namespace
    )
    assert patched["spec"]["rollout"]["candidate"] == "green"
    # Moving the target split off the candidate breaks a rule of the whole spec.
    message = rejected(
        kube.patch, API_VERSION, KIND_ONLINE_ENDPOINT, "credit",
        {"spec": {"traffic": {"blue": 100, "green": None}}}, namespace,
    )  # fmt: skip
    assert ep.MSG_ROLLOUT_CANDIDATE_WEIGHT in message
    steps = [{"setWeight": 5}, {"analysis": {"metrics": ["nope"]}}]
    message = rejected(
        kube.patch, API_VERSION, KIND_ONLINE_ENDPOINT, "credit",
        {"spec": {"rollout": {"steps": steps}}}, namespace,
    )  # fmt: skip
    assert ro.MSG_ANALYSIS_METRICS in message


def test_the_largest_rollout_fits_the_cel_cost_budget(kube: Kube, namespace: str) -> None:
    obj = endpoint("credit", namespace)
    rollout = obj["spec"]["rollout"]
    names = [f"metric-{i:02d}-" + "x" * 50 for i in range(ro.MAX_METRICS)]
    template = rollout["metrics"][0]
    rollout["metrics"] = [{**template, "name": n} for n in names]
    rollout["steps"] = [{"analysis": {"metrics": names}}] * ro.MAX_STEPS
    rollout["backgroundAnalysis"] = {"metrics": names, "startingStep": ro.MAX_STEPS - 1}
    created = kube.create(obj)
    assert len(created["spec"]["rollout"]["steps"]) == ro.MAX_STEPS


def test_status_rollout_is_written_through_the_status_subresource(
    kube: Kube, namespace: str
) -> None:
    kube.create(endpoint("credit", namespace))
    status = {"traffic": {"blue": 100}, "rollout": aborted_status()}
    done = kube.patch(
        API_VERSION, KIND_ONLINE_ENDPOINT, "credit", {"status": status}, namespace, "status"
    )
    # What was written comes back (with the schema's defaults filled in: scaledDown false...).
    written = done["status"]["rollout"]
    assert RolloutStatus.model_validate(written) == RolloutStatus.model_validate(aborted_status())
    assert (written["scaledDown"], written["metrics"][0]["consecutiveErrors"]) == (False, 0)
    assert done["metadata"]["generation"] == 1
    bad = {"rollout": aborted_status(phase="Running")}
    message = rejected(
        kube.patch, API_VERSION, KIND_ONLINE_ENDPOINT, "credit", {"status": bad}, namespace,
        "status",
    )  # fmt: skip
    assert "status.rollout.phase" in message
