"""The drift controller against the in-memory API: what one evaluation stores and announces."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

from mlkube.builders.endpoint_drift_status import BASELINE_MISSING, NO_REPLICA
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.controllers import endpoint as endpoint_controller
from mlkube.controllers.drift import evaluate_drift
from mlkube.controllers.drift_poll import BaselineCache
from support.cluster_objects import NOW, NS, endpoint_obj, model_obj
from support.fake_kube import FakeKube, Key

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
PROFILE = {"formatVersion": 1, "windowSize": 10, "features": [], "columns": []}


@contextlib.contextmanager
def no_lock(namespace: str, name: str) -> Iterator[None]:
    yield


def baselines() -> BaselineCache:
    return BaselineCache(lambda uri, digest: dict(PROFILE))


def drift_endpoint(fake: FakeKube, config: OperatorConfig) -> None:
    with_baseline = model_obj("credit-risk-v5")
    with_baseline["spec"]["baseline"] = {"uri": "s3://models/credit-risk-v5.profile.json"}
    fake.put(with_baseline)
    fake.put(endpoint_obj(deployments=[
        {"name": "blue", "model": "credit-risk-v3", "drift": {"enabled": True}},
        {"name": "green", "model": "credit-risk-v5", "drift": {"enabled": True}},
    ]))  # fmt: skip
    endpoint_controller.reconcile(fake, config, NS, "credit", NOW)


def entries(fake: FakeKube) -> dict[str, Any]:
    status = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)["status"]
    return {d["name"]: d.get("drift") for d in status["deployments"]}


def test_one_evaluation_stores_each_deployments_verdict_and_announces_once(
    fake: FakeKube, config: OperatorConfig
) -> None:
    drift_endpoint(fake, config)
    outcome = evaluate_drift(fake, config, NS, "credit", baselines(), no_lock, lambda: T0)
    got = entries(fake)
    assert got["blue"]["reason"] == BASELINE_MISSING  # credit-risk-v3 has no spec.baseline
    assert got["green"]["reason"] == NO_REPLICA  # a fake cluster runs no pods
    assert [e[1] for e in outcome.events] == [BASELINE_MISSING]
    assert outcome.subject is not None and outcome.subject["metadata"]["name"] == "credit"
    again = evaluate_drift(fake, config, NS, "credit", baselines(), no_lock, lambda: T0)
    assert again.events == []  # the same problem is announced once


def test_the_status_write_uses_the_endpoint_as_it_is_after_the_poll(
    fake: FakeKube, config: OperatorConfig
) -> None:
    drift_endpoint(fake, config)
    key: Key = (API_VERSION, "OnlineEndpoint", NS, "credit")

    def reconcile_meanwhile(verb: str, seen: Key) -> None:
        # While the pods are polled, the reconcile removes green from the spec.
        if verb == "list" or (verb == "get" and seen[1] == "Model" and seen[3] == "credit-risk-v5"):
            fake.before.remove(reconcile_meanwhile)
            fake.mutate(key, lambda obj: obj["spec"].update(
                deployments=[{"name": "blue", "model": "credit-risk-v3",
                              "drift": {"enabled": True}}], traffic={"blue": 100}))  # fmt: skip
            endpoint_controller.reconcile(fake, config, NS, "credit", NOW)

    fake.before.append(reconcile_meanwhile)
    evaluate_drift(fake, config, NS, "credit", baselines(), no_lock, lambda: T0)
    assert reconcile_meanwhile not in fake.before
    assert set(entries(fake)) == {"blue"}  # green's stale verdict is not written back


def test_an_endpoint_deleted_meanwhile_is_left_alone(
    fake: FakeKube, config: OperatorConfig
) -> None:
    drift_endpoint(fake, config)
    fake.delete(API_VERSION, "OnlineEndpoint", "credit", NS)
    writes = len(fake.writes)
    outcome = evaluate_drift(fake, config, NS, "credit", baselines(), no_lock, lambda: T0)
    assert outcome.events == [] and outcome.subject is None
    assert len(fake.writes) == writes


def test_pods_outside_the_operators_pod_networks_are_never_contacted(
    fake: FakeKube, config: OperatorConfig, monkeypatch: Any
) -> None:
    """kwok hands out pod IPs that exist nowhere: polling them would leave the machine."""
    import dataclasses

    from mlkube.builders.names import COMPONENT_SERVER, pod_selector
    from mlkube.controllers import drift as drift_controller

    dev = dataclasses.replace(config, pod_networks=("127.0.0.0/8",))
    drift_endpoint(fake, dev)
    fake.put({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "green-0", "namespace": NS,
                     "labels": pod_selector("credit", COMPONENT_SERVER, "green")},
        "spec": {"containers": [{"name": "server"}, {"name": "drift"}]},
        "status": {"phase": "Running", "podIP": "10.244.0.5",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })  # fmt: skip
    contacted: list[list[str]] = []

    def fetch(hosts: list[str], port: int, timeout: float, *_: Any) -> tuple[list[Any], list[str]]:
        contacted.append(hosts)
        return [], []

    monkeypatch.setattr(drift_controller, "fetch_summaries", fetch)
    evaluate_drift(fake, dev, NS, "credit", baselines(), no_lock, lambda: T0)
    assert contacted == []
    green = entries(fake)["green"]
    assert green["reason"] == NO_REPLICA and "MLKUBE_POD_NETWORKS" in green["message"]
