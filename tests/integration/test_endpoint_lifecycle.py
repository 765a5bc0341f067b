"""OnlineEndpoint on the real control plane with the real operator: children, readiness,
traffic changes without restarts, pruning, deletion and Model.status.deployedBy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children, child_key
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.names import EndpointRef, deployment_name, router_name
from mlkube.builders.operator_config import parse_operator_config
from mlkube.contract import API_VERSION
from mlkube.events.catalogue import DEPLOYMENT_READY, TRAFFIC_CHANGED
from mlkube.events.extract import implied_events
from mlkube.k8s import ApiError, Kube
from support.endpoints import (
    blue_green_spec,
    condition,
    create_ready_models,
    deployed_by,
    endpoint_object,
    is_subset,
    wait_endpoint_ready,
)
from support.waiting import wait_for

EP = "credit"
REF = {"kind": "OnlineEndpoint", "name": EP}


def expected_children(kube: Kube, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """What the builders say the cluster should hold for this endpoint right now."""
    meta = obj["metadata"]
    spec = OnlineEndpointSpec.model_validate(obj["spec"])
    models: dict[str, ModelFacts] = {}
    for name in {d.model for d in spec.deployments}:
        facts = read_model(name, kube.get(API_VERSION, "Model", name, meta["namespace"]))
        assert isinstance(facts, ModelFacts)
        models[name] = facts
    owner = EndpointRef(meta["name"], meta["namespace"], meta["uid"])
    return build_endpoint_children(
        owner, spec, models, parse_operator_config(os.environ), keys=["unused"]
    )


def server_pods(kube: Kube, namespace: str) -> dict[str, str]:
    pods = kube.list("v1", "Pod", namespace, label_selector="mlkube.dev/component=model-server")
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}


def generations(kube: Kube, namespace: str) -> dict[str, int]:
    deps = kube.list("apps/v1", "Deployment", namespace)
    return {d["metadata"]["name"]: d["metadata"]["generation"] for d in deps}


def test_children_match_the_builders_and_the_endpoint_becomes_ready(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    digests = create_ready_models(kube, namespace, tmp_path)
    kube.create(endpoint_object(EP, namespace, blue_green_spec()))
    obj = wait_endpoint_ready(kube, namespace, EP)

    for want in expected_children(kube, obj):
        api_version, kind, name = child_key(want)
        live = kube.get(api_version, kind, name, namespace)
        assert live is not None, f"{kind} {name} missing"
        body = {k: v for k, v in want.items() if k not in ("apiVersion", "kind", "metadata")}
        assert is_subset(body, live) == [], f"{kind} {name}"
        assert is_subset(want["metadata"], live["metadata"]) == [], f"{kind} {name} metadata"

    status = obj["status"]
    assert status["url"] == f"http://{EP}.{namespace}.svc.cluster.local"
    assert status["traffic"] == {"blue": 70, "green": 30}
    history = ("readyAt", "modelVersion", "modelDigest")  # for the CloudEvents (below)
    assert [{k: v for k, v in d.items() if k not in history} for d in status["deployments"]] == [
        {"name": "blue", "model": "credit-risk-v3", "readyReplicas": 2, "replicas": 2},
        {"name": "green", "model": "credit-risk-v4", "readyReplicas": 1, "replicas": 1},
    ]
    # The status the real API server stored implies one deployment.ready per deployment.
    ready = [e for e in implied_events("OnlineEndpoint", obj) if e.type == DEPLOYMENT_READY.type]
    served = [(e.data["deployment"], e.data["modelVersion"], e.data["modelDigest"]) for e in ready]
    assert served == [
        ("blue", "3", digests["credit-risk-v3"]), ("green", "4", digests["credit-risk-v4"]),
    ]  # fmt: skip
    assert all(e.time == d["readyAt"] for e, d in zip(ready, status["deployments"], strict=True))
    assert condition(obj, "Progressing")["status"] == "False"
    assert condition(obj, "Degraded")["status"] == "False"
    # Ready only once pods are available: every server pod exists and is Ready.
    pods = kube.list("v1", "Pod", namespace, label_selector="mlkube.dev/component=model-server")
    assert len(pods) == 3
    # The init container downloads exactly the verified artifact.
    blue = kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), namespace)
    assert blue is not None
    init_args = blue["spec"]["template"]["spec"]["initContainers"][0]["args"]
    assert init_args[-1] == digests["credit-risk-v3"]
    for model in ("credit-risk-v3", "credit-risk-v4"):
        assert deployed_by(kube, namespace, model) == [{**REF, "namespace": namespace}]

    # A child deleted by hand comes back at once (the Deployment watch triggers a reconcile).
    green = kube.get("apps/v1", "Deployment", deployment_name(EP, "green"), namespace)
    assert green is not None
    kube.delete("apps/v1", "Deployment", deployment_name(EP, "green"), namespace)
    wait_for(
        lambda: (
            (kube.get("apps/v1", "Deployment", deployment_name(EP, "green"), namespace) or {})
            .get("metadata", {})
            .get("uid", green["metadata"]["uid"])
            != green["metadata"]["uid"]
        ),
        timeout=10,
        interval=0.05,
        what="deleted Deployment recreated",
    )
    wait_endpoint_ready(kube, namespace, EP)


def test_traffic_change_rewrites_the_router_config_only(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    kube.create(endpoint_object(EP, namespace, blue_green_spec()))
    wait_endpoint_ready(kube, namespace, EP)
    pods_before, gens_before = server_pods(kube, namespace), generations(kube, namespace)

    kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": {"traffic": {"blue": 50, "green": 50}}},
               namespace)  # fmt: skip
    obj = wait_endpoint_ready(kube, namespace, EP)
    assert obj["status"]["traffic"] == {"blue": 50, "green": 50}
    cm = kube.get("v1", "ConfigMap", router_name(EP), namespace)
    assert cm is not None
    assert '"blue": 50' in cm["data"]["config.json"]
    assert server_pods(kube, namespace) == pods_before  # no model pod restarted
    assert generations(kube, namespace) == gens_before  # no Deployment (router included) changed

    def traffic_event() -> list[dict[str, Any]]:
        events = kube.list("v1", "Event", namespace)
        return [e for e in events if e["reason"] == "TrafficChanged"]

    (event,) = wait_for(traffic_event, timeout=10, interval=0.05, what="TrafficChanged Event")
    assert event["message"] == "traffic blue=70 green=30 \u2192 blue=50 green=50"
    assert event["involvedObject"]["name"] == EP
    # ... and the status records it, so the change implies one traffic.changed CloudEvent.
    change = obj["status"]["lastTrafficChange"]
    assert change["previousTraffic"] == {"blue": 70, "green": 30}
    (changed,) = [
        e for e in implied_events("OnlineEndpoint", obj) if e.type == TRAFFIC_CHANGED.type
    ]
    assert changed.time == change["at"]
    assert changed.data["traffic"] == {"blue": 50, "green": 50}
    assert changed.data["previous"] == {"traffic": {"blue": 70, "green": 30}, "mirror": {}}

    # Removing a deployment prunes its children and releases its Model.
    removal = {"spec": {"deployments": blue_green_spec()["deployments"][:1],
                        "traffic": {"blue": 100, "green": None}}}  # fmt: skip
    kube.patch(API_VERSION, "OnlineEndpoint", EP, removal, namespace)
    wait_endpoint_ready(kube, namespace, EP)
    wait_for(
        lambda: (
            kube.get("apps/v1", "Deployment", deployment_name(EP, "green"), namespace) is None
            and kube.get("v1", "Service", deployment_name(EP, "green"), namespace) is None
        ),
        timeout=10,
        interval=0.05,
        what="green children pruned",
    )
    assert deployed_by(kube, namespace, "credit-risk-v4") == []
    assert deployed_by(kube, namespace, "credit-risk-v3") == [{**REF, "namespace": namespace}]
    assert (
        generations(kube, namespace)[deployment_name(EP, "blue")]
        == gens_before[deployment_name(EP, "blue")]
    )


def test_deleting_the_endpoint_collects_children_and_releases_models(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    kube.create(endpoint_object(EP, namespace, blue_green_spec()))
    wait_endpoint_ready(kube, namespace, EP)

    kube.delete(API_VERSION, "OnlineEndpoint", EP, namespace)
    wait_for(
        lambda: kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) is None,
        timeout=10,
        interval=0.05,
        what="endpoint gone (no finalizer holds it)",
    )
    selector = f"mlkube.dev/endpoint={EP}"

    def children_left() -> list[str]:
        kinds = [("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ConfigMap"),
                 ("policy/v1", "PodDisruptionBudget"), ("v1", "Pod")]  # fmt: skip
        return [
            f"{kind}/{o['metadata']['name']}"
            for api_version, kind in kinds
            for o in kube.list(api_version, kind, namespace, label_selector=selector)
        ]

    wait_for(lambda: not children_left(), timeout=20, interval=0.1, what="children collected")
    wait_for(  # released on the DELETED event, just after the endpoint went
        lambda: all(
            deployed_by(kube, namespace, m) == [] for m in ("credit-risk-v3", "credit-risk-v4")
        ),
        timeout=10,
        interval=0.05,
        what="Models released",
    )


def test_endpoint_waits_for_its_models_then_converges(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    kube.create(endpoint_object(EP, namespace, blue_green_spec()))

    def waiting() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace)
        return obj if condition(obj, "Progressing").get("reason") == "ModelNotFound" else None

    obj = wait_for(waiting, timeout=10, interval=0.05, what="Progressing ModelNotFound")
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Degraded")["status"] == "False"
    assert "credit-risk-v3 does not exist" in obj["status"]["message"]
    assert kube.list("apps/v1", "Deployment", namespace) == []

    create_ready_models(kube, namespace, tmp_path)
    ready = wait_endpoint_ready(kube, namespace, EP, timeout=30)  # the Model watch kicks it
    assert ready["status"]["traffic"] == {"blue": 70, "green": 30}


def test_api_server_refuses_reserved_names_and_key_auth_on_the_gateway(
    kube: Kube, namespace: str
) -> None:
    cases = [
        (blue_green_spec(deployments=[{"name": "router", "model": "m"}], traffic={}), "reserved"),
        (blue_green_spec(trafficBackend="gateway-api", auth={"mode": "key"}), "key auth"),
    ]
    for spec, message in cases:
        with pytest.raises(ApiError) as refused:
            kube.create(endpoint_object(EP, namespace, spec))
        assert refused.value.status == 422
        assert message in str(refused.value)
