"""What one endpoint pass costs in API requests: every object read at most once, Models read
by name (never a LIST of every Model in the namespace), no pre-hash keys Secret read once it is
known absent. A budget that grows per endpoint becomes thousands of requests at scale."""

from __future__ import annotations

from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.controllers import endpoint as controller
from support.cluster_objects import NOW, NS, endpoint_obj, model_obj
from support.counting_kube import CountingKube
from support.fake_kube import FakeKube, Key


def reads_by_object(fake: FakeKube) -> dict[Key, int]:
    counts: dict[Key, int] = {}

    def hook(verb: str, key: Key) -> None:
        if verb == "get":
            counts[key] = counts.get(key, 0) + 1

    fake.before.append(hook)
    return counts


def test_a_pass_reads_each_object_once_and_lists_no_models(
    fake: FakeKube, config: OperatorConfig
) -> None:
    for i in range(5):
        fake.put(model_obj(f"unrelated-{i}"))  # other endpoints' Models cost nothing
    fake.put(endpoint_obj("credit", auth={"mode": "key"}))
    counted = CountingKube(fake)
    controller.reconcile(counted, config, NS, "credit", NOW)  # creates
    counts = reads_by_object(fake)
    counted.reset()
    controller.reconcile(counted, config, NS, "credit", NOW)  # steady state
    assert {k: n for k, n in counts.items() if n > 1} == {}
    assert counted.calls["list", "Model"] == 0
    assert counted.calls["get", "Model"] == 2  # the two it serves
    # keys + push key; the pre-hash keys Secret was found absent on the first pass
    assert counted.calls["get", "Secret"] == 2


def test_a_model_dropped_from_the_spec_forgets_the_endpoint(
    fake: FakeKube, config: OperatorConfig
) -> None:
    fake.put(endpoint_obj("credit"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    refs = fake.stored(API_VERSION, "Model", "credit-risk-v4", NS)["status"]["deployedBy"]
    assert [r["name"] for r in refs] == ["credit"]
    one = {"deployments": [{"name": "blue", "model": "credit-risk-v3"}], "traffic": {"blue": 100}}
    fake.mutate((API_VERSION, "OnlineEndpoint", NS, "credit"), lambda o: o.update(spec=one))
    controller.reconcile(fake, config, NS, "credit", NOW)
    status = fake.stored(API_VERSION, "Model", "credit-risk-v4", NS)["status"]
    assert status.get("deployedBy") == []
    refs = fake.stored(API_VERSION, "Model", "credit-risk-v3", NS)["status"]["deployedBy"]
    assert [r["name"] for r in refs] == ["credit"]


def test_a_steady_pass_lists_each_child_kind_once_and_gets_no_listed_child(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """The children's labelled LISTs (which prune needs anyway) answer the writes' reads: an
    idle pass (resync, restart) costs no GET per child (24 requests per pass before)."""
    fake.put(endpoint_obj("credit", auth={"mode": "key"}))
    counted = CountingKube(fake)
    controller.reconcile(counted, config, NS, "credit", NOW)  # creates
    counted.reset()
    controller.reconcile(counted, config, NS, "credit", NOW)  # steady state
    for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget"):
        assert counted.calls["get", kind] == 0, kind
    assert counted.calls["list", "ConfigMap"] == 1
    assert counted.calls["list", "PodDisruptionBudget"] == 1
    assert counted.calls["list", "HorizontalPodAutoscaler"] == 1
    assert counted.calls["list", "Service"] == 1
    assert counted.calls["list", "Deployment"] <= 2  # children, and the status's rollout view
    # (No write either on a real API server: tests/integration's idle resync; this fake
    # keeps no managedFields, so apply_needed cannot tell.)
    assert not [k for k in counted.calls if k[0] in ("create", "delete")]
