"""The OnlineEndpoint controller against the in-memory API: apply, status, deployedBy under
conflicts, 409s, prune, release after deletion and deployedBy repair."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION, LABEL_ENDPOINT, LABEL_MANAGED_BY, MANAGED_BY
from mlkube.controllers import endpoint as controller
from mlkube.controllers.endpoint_models import CONFLICT_RETRIES
from mlkube.controllers.errors import EndpointSyncError
from support.cluster_objects import NOW, NS, endpoint_obj, model_obj
from support.counting_kube import CountingKube
from support.fake_kube import FakeKube, Key


def create_endpoint(fake: FakeKube, name: str = "credit", **spec: Any) -> dict[str, Any]:
    return fake.put(endpoint_obj(name, **spec))


def reconcile(fake: FakeKube, config: OperatorConfig, name: str = "credit") -> Any:
    return controller.reconcile(fake, config, NS, name, NOW)


def children(fake: FakeKube, endpoint: str = "credit") -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object of everything labelled as this endpoint's child."""
    return {
        (k, n): obj
        for (_, k, _, n), obj in fake.objects.items()
        if (obj["metadata"].get("labels") or {}).get(LABEL_ENDPOINT) == endpoint
    }


def deployed_by(fake: FakeKube, model: str) -> list[str]:
    status = fake.stored(API_VERSION, "Model", model, NS).get("status") or {}
    return sorted(r["name"] for r in status.get("deployedBy") or [])


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_first_reconcile_creates_children_owned_by_the_endpoint(
    fake: FakeKube, config: OperatorConfig
) -> None:
    uid = create_endpoint(fake)["metadata"]["uid"]
    outcome = reconcile(fake, config)
    assert outcome.retry_message is None
    made = children(fake)
    kinds = sorted({kind for kind, _ in made})
    # The Secret is the router config push key (create-only; docs/rollouts.md §6).
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"]
    for obj in made.values():
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["uid"], ref["controller"]) == (uid, True)
        assert obj["metadata"]["labels"][LABEL_MANAGED_BY] == MANAGED_BY
    endpoint = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)
    # No router pod runs in a fake: the split is written, not applied (test_traffic_applied.py).
    assert "traffic" not in endpoint["status"]
    assert condition(endpoint, "TrafficApplied")["reason"] == "NoRouterReady"
    assert condition(endpoint, "Ready")["reason"] == "Progressing"  # no pods in a fake
    assert deployed_by(fake, "credit-risk-v3") == deployed_by(fake, "credit-risk-v4") == ["credit"]


def test_a_second_reconcile_changes_nothing(fake: FakeKube, config: OperatorConfig) -> None:
    create_endpoint(fake)
    reconcile(fake, config)
    before = {key: obj["metadata"]["resourceVersion"] for key, obj in fake.objects.items()}
    reconcile(fake, config)
    after = {key: obj["metadata"]["resourceVersion"] for key, obj in fake.objects.items()}
    assert after == before


def bump_once(fake: FakeKube, verb: str, model: str, times: int = 1) -> list[int]:
    """Before the next `times` writes `verb` to `model`, another writer changes it (a 409)."""
    hits = [0]

    def hook(seen: str, key: Key) -> None:
        if seen == verb and key[3] == model and hits[0] < times:
            hits[0] += 1
            other = {"kind": "OnlineEndpoint", "name": f"other-{hits[0]}", "namespace": NS}
            fake.mutate(key, lambda obj: obj.setdefault("status", {}).setdefault(
                "deployedBy", []).append(other))  # fmt: skip

    fake.before.append(hook)
    return hits


def test_deployed_by_survives_a_concurrent_writer(fake: FakeKube, config: OperatorConfig) -> None:
    create_endpoint(fake)
    hits = bump_once(fake, "patch/status", "credit-risk-v3")
    reconcile(fake, config)
    assert hits == [1]
    assert deployed_by(fake, "credit-risk-v3") == ["credit", "other-1"]


def test_deployed_by_that_keeps_conflicting_is_a_retryable_error(
    fake: FakeKube, config: OperatorConfig
) -> None:
    create_endpoint(fake)
    bump_once(fake, "patch/status", "credit-risk-v3", times=CONFLICT_RETRIES)
    with pytest.raises(EndpointSyncError, match="kept conflicting"):
        reconcile(fake, config)


def test_a_model_that_is_not_ready_blocks_and_retries(
    fake: FakeKube, config: OperatorConfig
) -> None:
    fake.put(model_obj("credit-risk-v5", phase="Verifying"))
    create_endpoint(fake, deployments=[{"name": "blue", "model": "credit-risk-v5"}],
                    traffic={"blue": 100})  # fmt: skip
    outcome = reconcile(fake, config)
    assert outcome.retry_message == "Model credit-risk-v5 is not Ready yet (Verifying)"
    assert outcome.models_wake  # its Ready event is the retry (handlers/endpoint.py)
    assert children(fake) == {}
    endpoint = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)
    assert condition(endpoint, "Ready")["reason"] == "ModelNotReady"
    assert controller.endpoints_waiting_for(fake, NS, "credit-risk-v5") == ["credit"]


def test_missing_gateway_api_is_degraded_without_retry(
    fake: FakeKube, config: OperatorConfig
) -> None:
    create_endpoint(fake, trafficBackend="gateway-api")
    outcome = reconcile(fake, config)
    assert outcome.retry_message is None
    endpoint = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)
    assert condition(endpoint, "Degraded")["status"] == "True"
    assert "GatewayAPIMissing" in endpoint["status"]["message"] or (
        condition(endpoint, "Ready")["reason"] in ("GatewayNotConfigured", "GatewayAPIMissing")
    )


def test_prune_deletes_only_our_stale_children(fake: FakeKube, config: OperatorConfig) -> None:
    create_endpoint(fake)
    reconcile(fake, config)
    green = {n for (k, n) in children(fake) if "green" in n}
    assert green
    # Someone else's object carrying our labels (a copy, another owner) must survive prune.
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ENDPOINT: "credit"}
    meta = {"name": "lookalike", "namespace": NS, "labels": labels}
    stranger = fake.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
    fake.patch(API_VERSION, "OnlineEndpoint", "credit",
               {"spec": {"deployments": [{"name": "blue", "model": "credit-risk-v3"}],
                         "traffic": {"blue": 100, "green": None}}}, NS)  # fmt: skip
    reconcile(fake, config)
    left = {n for (_, n) in children(fake)}
    assert not green & left
    assert "lookalike" in left and stranger["metadata"]["name"] == "lookalike"
    assert deployed_by(fake, "credit-risk-v4") == []


def test_release_deletes_children_and_releases_models(
    fake: FakeKube, config: OperatorConfig
) -> None:
    uid = create_endpoint(fake)["metadata"]["uid"]
    reconcile(fake, config)
    assert children(fake)
    assert deployed_by(fake, "credit-risk-v3") == ["credit"]
    del fake.objects[(API_VERSION, "OnlineEndpoint", NS, "credit")]  # gone, not yet collected
    controller.release(fake, NS, "credit", uid)
    assert children(fake) == {}
    assert deployed_by(fake, "credit-risk-v3") == deployed_by(fake, "credit-risk-v4") == []
    controller.release(fake, NS, "credit", uid)  # idempotent


def test_release_with_the_models_it_used_reads_only_those(
    fake: FakeKube, config: OperatorConfig
) -> None:
    """What the DELETED handler does: N endpoints deleted at once cost N small repairs, not
    N LISTs of every Model and endpoint of the namespace."""
    uid = create_endpoint(fake)["metadata"]["uid"]
    reconcile(fake, config)
    del fake.objects[(API_VERSION, "OnlineEndpoint", NS, "credit")]
    counting = CountingKube(fake)
    controller.release(counting, NS, "credit", uid, {"credit-risk-v3", "credit-risk-v4"})
    assert deployed_by(fake, "credit-risk-v3") == deployed_by(fake, "credit-risk-v4") == []
    assert counting.calls["list", "Model"] == counting.calls["list", "OnlineEndpoint"] == 0


def test_a_recreated_endpoint_does_not_prune_its_predecessors_children_by_name(
    fake: FakeKube, config: OperatorConfig
) -> None:
    create_endpoint(fake)
    reconcile(fake, config)
    controller.release(fake, NS, "credit", "some-other-uid")  # an old incarnation's DELETED event
    assert children(fake)
    assert deployed_by(fake, "credit-risk-v3") == ["credit"]  # the live successor keeps its use


def test_a_failing_pod_shows_why_in_the_endpoint_status(
    fake: FakeKube, config: OperatorConfig
) -> None:
    from mlkube.builders.names import COMPONENT_SERVER, child_labels

    create_endpoint(fake)
    reconcile(fake, config)
    log = "error: digest mismatch: expected sha256:aa, got sha256:bb"
    fake.put({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "credit-green-x", "namespace": NS,
                     "labels": child_labels("credit", COMPONENT_SERVER, "green")},
        "status": {"initContainerStatuses": [{
            "name": "storage-initializer", "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 3, "message": log}}}]},
    })  # fmt: skip
    controller.refresh_status(fake, config, NS, "credit", NOW)
    endpoint = fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)
    why = f"init container storage-initializer CrashLoopBackOff (exited 3: {log})"
    assert condition(endpoint, "Degraded")["status"] == "True"
    assert condition(endpoint, "Ready")["reason"] == "PodsFailing"
    assert endpoint["status"]["message"] == f"green: {why}"
    by_name = {d["name"]: d for d in endpoint["status"]["deployments"]}
    assert by_name["green"]["message"] == why
    assert "message" not in by_name["blue"]  # blue's pods are only starting
    assert controller.endpoint_for_label(fake, NS, "credit") == "credit"
    assert controller.endpoint_for_label(fake, NS, "nothing") is None


def test_endpoints_with_names_too_long_for_a_label_are_found_by_their_label(
    fake: FakeKube,
) -> None:
    from mlkube.builders.names import label_value

    name = "a" * 70
    create_endpoint(fake, name)
    assert label_value(name) != name
    assert controller.endpoint_for_label(fake, NS, label_value(name)) == name
