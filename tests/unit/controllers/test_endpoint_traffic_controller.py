"""The traffic fast path against the in-memory cluster: it writes the router ConfigMap, and its
status step after it writes the status; both together take fewer requests than a full pass; a
full pass after them writes nothing; anything else (or anything uncertain) falls back to the
full pass."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.builders.names import COMPONENT_ROUTER, pod_selector, router_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.controllers import endpoint as controller
from mlkube.controllers import endpoint_traffic as traffic
from mlkube.reconcile.router_revision import config_document
from support.cluster_objects import NOW, NS, endpoint_obj
from support.counting_kube import CountingKube
from support.fake_kube import FakeKube

KEY = (API_VERSION, "OnlineEndpoint", NS, "credit")


def applied(fake: FakeKube, config: OperatorConfig) -> dict[str, Any]:
    """The endpoint after its first full pass; returns the spec that pass handled. Its router
    replica is Ready outside the operator's pod networks: every split written counts as
    applied (not verified), as on kwok."""
    labels = pod_selector("credit", COMPONENT_ROUTER)
    fake.put({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "router-0", "namespace": NS, "labels": labels},
              "status": {"phase": "Running", "podIP": "10.0.0.9",
                         "conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip
    fake.put(endpoint_obj("credit"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    spec: dict[str, Any] = fake.stored(*KEY[:2], "credit", NS)["spec"]
    return spec


@pytest.fixture
def config() -> OperatorConfig:
    """Router replicas outside the operator's pod networks, as on kwok: nothing is asked."""
    return OperatorConfig(
        serving_image="registry.example/mlkube-serving:1.2.3", pod_networks=("127.0.0.0/8",)
    )


def change_spec(fake: FakeKube, **change: Any) -> None:
    def edit(obj: dict[str, Any]) -> None:
        obj["spec"].update(change)
        obj["metadata"]["generation"] += 1

    fake.mutate(KEY, edit)


def router_doc(fake: FakeKube) -> dict[str, Any]:
    cm = fake.stored("v1", "ConfigMap", router_name("credit"), NS)
    doc = config_document(cm["data"]["config.json"])
    assert doc is not None
    return doc


def test_a_traffic_change_writes_the_configmap_and_status_only(
    fake: FakeKube, config: OperatorConfig
) -> None:
    old = applied(fake, config)
    revision = router_doc(fake)["revision"]
    change_spec(fake, traffic={"blue": 20, "green": 80}, mirror={})
    counted = CountingKube(fake)
    fake.writes.clear()
    outcome = traffic.reconcile_traffic(counted, config, NS, "credit", NOW, old)
    assert outcome is not None and outcome.retry_message is None
    assert router_doc(fake)["traffic"] == {"blue": 20, "green": 80}
    assert router_doc(fake)["revision"] == revision + 1
    # The handler's path writes the ConfigMap only; the status is left for after it.
    assert [(v, k[1]) for v, k in fake.writes] == [("apply", "ConfigMap")]
    assert outcome.status_for is not None and outcome.status_for[1] == 2
    assert outcome.events == []
    assert fake.stored(*KEY[:2], "credit", NS)["status"]["observedGeneration"] == 1
    outcome = traffic.write_traffic_status(counted, config, NS, "credit", NOW, 2)
    assert sorted({(v, k[1]) for v, k in fake.writes}) == [
        ("apply", "ConfigMap"),
        ("patch/status", "OnlineEndpoint"),
    ]
    status = fake.stored(*KEY[:2], "credit", NS)["status"]
    assert status["observedGeneration"] == 2
    assert status["traffic"] == {"blue": 20, "green": 80}
    assert ("Normal", "TrafficChanged", "traffic blue=70 green=30 \u2192 blue=20 green=80") in (
        outcome.events
    )
    fast = counted.total()
    assert counted.calls["get", "Model"] == 0 and counted.calls["get", "Secret"] == 0

    # A full pass of the same generation: more requests, the same ConfigMap and status (the
    # fake keeps no managedFields, so it cannot skip applies: the real API server's test does).
    cm_before = fake.stored("v1", "ConfigMap", router_name("credit"), NS)["data"]
    counted.reset()
    controller.reconcile(counted, config, NS, "credit", NOW)
    assert fake.stored("v1", "ConfigMap", router_name("credit"), NS)["data"] == cm_before
    assert fake.stored(*KEY[:2], "credit", NS)["status"] == status
    assert fast < counted.total()


def test_two_changes_before_the_pass_write_the_latest(
    fake: FakeKube, config: OperatorConfig
) -> None:
    old = applied(fake, config)
    change_spec(fake, traffic={"blue": 20, "green": 80})
    change_spec(fake, traffic={"blue": 0, "green": 100})
    # The pass of the first change reads the live endpoint: it writes the second's split,
    # and the status step writes the status of the generation it read.
    first = traffic.reconcile_traffic(fake, config, NS, "credit", NOW, old)
    assert first is not None and first.status_for is not None and first.status_for[1] == 3
    assert router_doc(fake)["traffic"] == {"blue": 0, "green": 100}
    traffic.write_traffic_status(fake, config, NS, "credit", NOW, 3)
    written = router_doc(fake)
    status = fake.stored(*KEY[:2], "credit", NS)["status"]
    newer = fake.stored(*KEY[:2], "credit", NS)["spec"]
    # The second change's pass then changes nothing (no revision bump, the same status).
    before = {**newer, "traffic": {"blue": 20, "green": 80}}
    assert traffic.reconcile_traffic(fake, config, NS, "credit", NOW, before) is not None
    traffic.write_traffic_status(fake, config, NS, "credit", NOW, 3)
    assert router_doc(fake) == written
    assert fake.stored(*KEY[:2], "credit", NS)["status"] == status
    assert status["traffic"] == {"blue": 0, "green": 100}
    # Nothing changed since the spec handled: the full pass decides.
    assert traffic.reconcile_traffic(fake, config, NS, "credit", NOW, newer) is None


def test_a_change_of_more_than_traffic_runs_the_full_pass(
    fake: FakeKube, config: OperatorConfig
) -> None:
    old = applied(fake, config)
    change_spec(fake, traffic={"blue": 20, "green": 80}, auth={"mode": "key"})
    assert traffic.reconcile_traffic(fake, config, NS, "credit", NOW, old) is None
    fake.writes.clear()
    traffic.reconcile_change(fake, config, NS, "credit", NOW, old)
    kinds = {k[1] for _, k in fake.writes}
    assert {"Secret", "ConfigMap", "Deployment"} <= kinds  # the keys Secret, router mounts it
    assert router_doc(fake)["auth"]["mode"] == "key"


def test_a_missing_configmap_runs_the_full_pass(fake: FakeKube, config: OperatorConfig) -> None:
    old = applied(fake, config)
    fake.delete("v1", "ConfigMap", router_name("credit"), NS)
    change_spec(fake, traffic={"blue": 20, "green": 80})
    assert traffic.reconcile_traffic(fake, config, NS, "credit", NOW, old) is None
    traffic.reconcile_change(fake, config, NS, "credit", NOW, old)
    assert router_doc(fake)["traffic"] == {"blue": 20, "green": 80}


def test_a_gone_endpoint_is_nothing_to_do(fake: FakeKube, config: OperatorConfig) -> None:
    old = applied(fake, config)
    fake.delete(*KEY[:2], "credit", NS)
    fake.writes.clear()
    outcome = traffic.reconcile_traffic(fake, config, NS, "credit", NOW, old)
    assert outcome == controller.Outcome() and fake.writes == []


def test_the_status_step_leaves_a_newer_generation_to_its_own_pass(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """A change that came after the fast path read the endpoint: the status step does not
    claim it observed that generation (its ConfigMap may not be written yet); nor does it
    write for an endpoint of the same name that replaced the one changed."""
    old = applied(fake, config)
    change_spec(fake, traffic={"blue": 20, "green": 80})
    outcome = traffic.reconcile_traffic(fake, config, NS, "credit", NOW, old)
    assert outcome is not None and outcome.status_for is not None
    uid, generation = outcome.status_for
    assert generation == 2
    assert (
        traffic.write_traffic_status(fake, config, NS, "credit", NOW, 2, "other-uid").subject
        is None
    )
    change_spec(fake, traffic={"blue": 0, "green": 100})
    fake.writes.clear()
    assert traffic.write_traffic_status(fake, config, NS, "credit", NOW, 2, uid).events == []
    assert fake.writes == []
    assert fake.stored(*KEY[:2], "credit", NS)["status"]["observedGeneration"] == 1
    fake.delete(*KEY[:2], "credit", NS)
    assert traffic.write_traffic_status(fake, config, NS, "credit", NOW, 3).subject is None
