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
    assert counted.calls["list", "Deployment"] <= 2  # children, and the status view after writes
    # (No write either on a real API server: tests/integration's idle resync; this fake
    # keeps no managedFields, so apply_needed cannot tell.)
    assert not [k for k in counted.calls if k[0] in ("create", "delete")]


def test_the_status_reads_the_passs_list_of_deployments_unless_it_wrote_one(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """An idle pass (restart, resync) writes no Deployment, so the LIST it began with is the
    status's view too; a pass that wrote one lists again (the status must see the write)."""
    from mlkube.api.endpoint import OnlineEndpointSpec
    from mlkube.builders.names import EndpointRef
    from mlkube.controllers.endpoint_status_io import observe_workloads
    from mlkube.controllers.pass_reads import PassReads

    fake.put(endpoint_obj("credit"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    obj = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)
    owner = EndpointRef(name="credit", namespace=NS, uid=obj["metadata"]["uid"])
    spec = OnlineEndpointSpec.model_validate(obj["spec"])
    counted = CountingKube(fake)
    listed = counted.list("apps/v1", "Deployment", NS)
    counted.reset()
    healths, router = observe_workloads(counted, owner, spec, listed)
    assert counted.calls["list", "Deployment"] == 0 and counted.calls["get", "Deployment"] == 0
    counted.reset()
    assert (healths, router) == observe_workloads(counted, owner, spec)
    assert counted.calls["list", "Deployment"] == 1

    reads = PassReads(fake)
    assert reads.written_kinds == set()
    dep = listed[0]
    reads.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dep["metadata"],
                 "spec": dep["spec"]})  # fmt: skip
    reads.delete("v1", "Service", "gone", NS)
    assert reads.written_kinds == {("apps/v1", "Deployment"), ("v1", "Service")}


def test_a_resume_pass_from_a_batchs_share_lists_no_child_and_sees_what_its_lists_would(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """At a restart a resume pass reads its children from its batch's LISTs
    (controllers/resume_reads.py): no LIST of its own, and a child deleted while the operator
    was away (gone before the batch was listed) is still recreated."""
    from mlkube.builders.names import deployment_name, label_value
    from mlkube.controllers.resume_reads import KINDS, ResumeBatches, SharedLists

    for name in ("credit", "churn"):
        fake.put(endpoint_obj(name, auth={"mode": "key"}))
        controller.reconcile(fake, config, NS, name, NOW)  # creates
    gone = deployment_name("credit", "blue")
    fake.delete("v1", "Service", gone, NS)
    batches = ResumeBatches()
    for name in ("credit", "churn"):
        batches.expect(NS, label_value(name))
    counted = CountingKube(fake)
    served = [k for k in KINDS if k in fake.kinds]  # this fake serves no Gateway, Prometheus

    def lists() -> int:  # the status's Deployment LIST after a write is the pass's own
        return sum(counted.calls["list", kind] for _, kind in served if kind != "Deployment")

    for name in ("credit", "churn"):
        share = batches.take(counted, NS, label_value(name))
        assert share is not None
        before, deployments = lists(), counted.calls["list", "Deployment"]
        shared = SharedLists(counted, NS, label_value(name), share)
        controller.reconcile(shared, config, NS, name, NOW)
        assert lists() == before, name  # every LIST of a served kind answered by the share
        # This fake keeps no managedFields, so each pass applies its Deployments (a real API
        # server's idle pass writes none): the status then lists them itself, to see them.
        assert counted.calls["list", "Deployment"] - deployments <= 1, name
    assert lists() == len(served) - 1 == 5  # one per kind, for both endpoints
    assert fake.get("v1", "Service", gone, NS) is not None


def test_the_deployments_a_status_was_computed_from_are_recorded_with_their_version(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """Their events at that version (a restart's listing) then cost no refresh pass."""
    from mlkube.builders.names import deployment_name
    from mlkube.controllers.observed_deployments import already_observed, forget_observed

    forget_observed()
    fake.put(endpoint_obj("credit"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    blue = fake.stored("apps/v1", "Deployment", deployment_name("credit", "blue"), NS)
    name, version = blue["metadata"]["name"], blue["metadata"]["resourceVersion"]
    assert already_observed(NS, name, version)
    fake.mutate(("apps/v1", "Deployment", NS, name), lambda o: o.update(status={"replicas": 1}))
    newer = fake.stored("apps/v1", "Deployment", name, NS)["metadata"]["resourceVersion"]
    assert not already_observed(NS, name, newer)
    assert not already_observed(NS, name, None)
