"""status.traffic says "applied" only once every Ready router replica serves the written config."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest

from mlkube.builders.endpoint_router import config_text_hash
from mlkube.builders.endpoint_router_push import read_push_key
from mlkube.builders.names import COMPONENT_ROUTER, pod_selector, push_secret_name, router_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.controllers import endpoint as controller
from mlkube.controllers import router_poll, router_push
from mlkube.controllers.pod_http import PodReply
from mlkube.reconcile.router_config import RouterState, traffic_verdict
from support.cluster_objects import NOW, NS, endpoint_obj
from support.fake_kube import FakeKube, Key


def router_pod(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": pod_selector("credit", COMPONENT_ROUTER),
        },
        "spec": {"containers": [{"name": "router"}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def stored(fake: FakeKube) -> dict[str, Any]:
    return fake.stored(API_VERSION, "OnlineEndpoint", "credit", NS)


def traffic_condition(fake: FakeKube) -> dict[str, Any]:
    return next(c for c in stored(fake)["status"]["conditions"] if c["type"] == "TrafficApplied")


class Routers:
    """What the router replicas answer on GET /-/config, by pod IP (None: no answer), and on a
    config push (`accept`: hosts that take a correctly signed push; the others do not answer)."""

    def __init__(self) -> None:
        self.serving: dict[str, str | None] = {}
        self.refused: dict[str, str] = {}
        self.asked: list[list[str]] = []
        self.accept: set[str] = set()
        self.pushed: list[tuple[list[str], bytes, dict[str, str]]] = []
        self.key: bytes | None = None

    def states(self, hosts: list[str], port: int, timeout: float, *_: Any) -> list[RouterState]:
        self.asked.append(list(hosts))
        return [RouterState(self.serving.get(h), self.refused.get(h)) for h in hosts]

    def put(self, hosts: list[str], port: int, path: str, body: bytes, headers: dict[str, str],
            **_: Any) -> list[PodReply]:  # fmt: skip
        self.pushed.append((list(hosts), body, dict(headers)))
        key = self.key or b"not the key"
        good = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        replies = []
        for host in hosts:
            if host not in self.accept:
                replies.append(PodReply(host, error="connection refused"))
            elif headers.get("x-mlkube-signature") != good:
                replies.append(PodReply(host, 403, b'{"error": "invalid signature"}'))
            else:
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                self.serving[host] = digest
                replies.append(PodReply(host, 200, json.dumps({"hash": digest}).encode()))
        return replies


@pytest.fixture
def routers(monkeypatch: pytest.MonkeyPatch) -> Routers:
    fake_routers = Routers()
    monkeypatch.setattr(router_poll, "router_config_states", fake_routers.states)
    monkeypatch.setattr(router_push, "put_to_pods", fake_routers.put)
    return fake_routers


def configmap_text(fake: FakeKube) -> str:
    return str(fake.stored("v1", "ConfigMap", router_name("credit"), NS)["data"]["config.json"])


def expected_hash(fake: FakeKube, config: OperatorConfig) -> str:
    """The hash of the config file the ConfigMap holds (what a router that loaded it serves)."""
    return config_text_hash(configmap_text(fake))


def push_key(fake: FakeKube) -> bytes:
    key = read_push_key(fake.stored("v1", "Secret", push_secret_name("credit"), NS))
    assert key is not None
    return key


def test_a_new_split_is_applied_only_after_every_router_loaded_it(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    fake.put(endpoint_obj())
    fake.put(router_pod("router-a", "10.1.0.1"))
    fake.put(router_pod("router-b", "10.1.0.2"))
    routers.serving = dict.fromkeys(["10.1.0.1", "10.1.0.2"], "sha256:old")
    first = controller.reconcile(fake, config, NS, "credit", NOW)
    assert "traffic" not in stored(fake)["status"]  # none applied yet
    assert traffic_condition(fake)["reason"] == "RouterReloading"
    assert first.retry_message is not None and "2 of 2" in first.retry_message

    routers.serving["10.1.0.1"] = expected_hash(fake, config)  # one replica reloaded
    again = controller.reconcile(fake, config, NS, "credit", NOW)
    assert "traffic" not in stored(fake)["status"]  # none applied yet
    assert again.retry_message is not None and "1 of 2" in again.retry_message

    routers.serving["10.1.0.2"] = expected_hash(fake, config)
    done = controller.reconcile(fake, config, NS, "credit", NOW)
    assert done.retry_message is None
    assert stored(fake)["status"]["traffic"] == {"blue": 70, "green": 30}
    assert traffic_condition(fake)["status"] == "True"

    key: Key = (API_VERSION, "OnlineEndpoint", NS, "credit")
    fake.mutate(key, lambda obj: obj["spec"].update(traffic={"blue": 50, "green": 50}))
    changed = controller.reconcile(fake, config, NS, "credit", NOW)
    assert changed.events == []  # nothing announced before the routers serve it
    assert stored(fake)["status"]["traffic"] == {"blue": 70, "green": 30}
    routers.serving = dict.fromkeys(["10.1.0.1", "10.1.0.2"], expected_hash(fake, config))
    refreshed = controller.refresh_status(fake, config, NS, "credit", NOW)
    assert stored(fake)["status"]["traffic"] == {"blue": 50, "green": 50}
    assert [e[1] for e in refreshed.events] == ["TrafficChanged"]


def test_routers_outside_the_pod_networks_are_not_asked_and_the_split_is_unverified(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    dev = dataclasses.replace(config, pod_networks=("127.0.0.0/8",))
    fake.put(endpoint_obj())
    fake.put(router_pod("router-a", "10.244.0.7"))  # a kwok address: exists nowhere
    outcome = controller.reconcile(fake, dev, NS, "credit", NOW)
    assert routers.asked == [[]]
    assert outcome.retry_message is None
    assert stored(fake)["status"]["traffic"] == {"blue": 70, "green": 30}
    condition = traffic_condition(fake)
    assert (condition["status"], condition["reason"]) == ("Unknown", "NotVerified")


def test_verdicts() -> None:
    assert traffic_verdict("sha256:a", 0, []).reason == "NoRouterReady"
    assert traffic_verdict("sha256:a", 2, ["sha256:a", "sha256:a"]).applied is True
    assert traffic_verdict("sha256:a", 2, ["sha256:a", None]).applied is False
    partial = traffic_verdict("sha256:a", 3, ["sha256:a"])
    assert (partial.applied, partial.reason) == (None, "NotVerified")


def test_a_refused_config_is_reported_not_retried_every_few_seconds(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    fake.put(endpoint_obj())
    fake.put(router_pod("router-a", "10.1.0.1"))
    routers.serving = {"10.1.0.1": "sha256:old"}
    routers.refused = {"10.1.0.1": "unknown key 'mirrorMaxBytes'"}
    outcome = controller.reconcile(fake, config, NS, "credit", NOW)
    assert outcome.retry_message is None  # the resync loop looks again; a retry cannot help
    condition = traffic_condition(fake)
    assert (condition["status"], condition["reason"]) == ("False", "RouterRejectedConfig")
    assert "mirrorMaxBytes" in condition["message"]
    assert "traffic" not in stored(fake)["status"]  # none applied yet


def test_switching_to_the_gateway_backend_drops_the_traffic_condition(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    from mlkube.builders.endpoint_route import HTTPROUTE_API_VERSION
    from mlkube.builders.operator_config import GatewayParent

    fake.kinds.add((HTTPROUTE_API_VERSION, "HTTPRoute"))
    with_gateway = dataclasses.replace(config, default_gateway=GatewayParent("public", "infra"))
    fake.put(endpoint_obj())
    controller.reconcile(fake, with_gateway, NS, "credit", NOW)
    assert traffic_condition(fake)["reason"] == "NoRouterReady"
    key: Key = (API_VERSION, "OnlineEndpoint", NS, "credit")
    fake.mutate(key, lambda obj: obj["spec"].update(trafficBackend="gateway-api"))
    controller.reconcile(fake, with_gateway, NS, "credit", NOW)
    status = stored(fake)["status"]
    assert [c["reason"] for c in status["conditions"] if c["type"] == "Degraded"] == ["AsExpected"]
    assert "TrafficApplied" not in [c["type"] for c in status["conditions"]]
    assert status["traffic"] == {"blue": 70, "green": 30}  # the HTTPRoute carries it


def test_replicas_behind_get_the_written_config_pushed_and_count_as_serving_it(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    fake.put(endpoint_obj())
    controller.reconcile(fake, config, NS, "credit", NOW)  # ConfigMap and push Secret exist
    routers.key = push_key(fake)
    fake.put(router_pod("router-a", "10.1.0.1"))
    fake.put(router_pod("router-b", "10.1.0.2"))
    routers.serving = dict.fromkeys(["10.1.0.1", "10.1.0.2"], "sha256:old")
    routers.accept = {"10.1.0.1"}  # router-b does not answer pushes: it waits for the file
    before = dict(router_push.PUSH_RESULTS)
    first = controller.reconcile(fake, config, NS, "credit", NOW)
    hosts, body, _ = routers.pushed[-1]
    assert sorted(hosts) == ["10.1.0.1", "10.1.0.2"]
    assert body.decode() == configmap_text(fake)  # the very bytes the ConfigMap holds
    assert first.retry_message is not None and "1 of 2" in first.retry_message
    assert router_push.PUSH_RESULTS["ok"] == before.get("ok", 0) + 1
    assert router_push.PUSH_RESULTS["error"] == before.get("error", 0) + 1

    routers.accept.add("10.1.0.2")  # the next pass pushes again, only to the one behind
    done = controller.refresh_status(fake, config, NS, "credit", NOW)
    assert routers.pushed[-1][0] == ["10.1.0.2"]
    assert stored(fake)["status"]["traffic"] == {"blue": 70, "green": 30}
    assert done.events == []  # the first split the routers serve is no change from "(none)"

    pushes = len(routers.pushed)
    controller.reconcile(fake, config, NS, "credit", NOW)  # every replica serves it: no push
    assert len(routers.pushed) == pushes


def test_a_spec_change_is_pushed_with_the_next_revision_and_applied_in_one_pass(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    fake.put(endpoint_obj())
    fake.put(router_pod("router-a", "10.1.0.1"))
    controller.reconcile(fake, config, NS, "credit", NOW)
    routers.key = push_key(fake)
    routers.accept = {"10.1.0.1"}
    controller.reconcile(fake, config, NS, "credit", NOW)
    first = json.loads(configmap_text(fake))["revision"]
    assert stored(fake)["status"]["traffic"] == {"blue": 70, "green": 30}

    key: Key = (API_VERSION, "OnlineEndpoint", NS, "credit")
    fake.mutate(key, lambda obj: obj["spec"].update(traffic={"blue": 0, "green": 100}))
    outcome = controller.reconcile(fake, config, NS, "credit", NOW)
    assert json.loads(configmap_text(fake))["revision"] == first + 1
    assert json.loads(routers.pushed[-1][1])["traffic"] == {"blue": 0, "green": 100}
    assert outcome.retry_message is None
    assert stored(fake)["status"]["traffic"] == {"blue": 0, "green": 100}
    assert [e[1] for e in outcome.events] == ["TrafficChanged"]


def test_without_the_push_secret_nothing_is_pushed_and_the_file_path_still_works(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    fake.put(endpoint_obj())
    controller.reconcile(fake, config, NS, "credit", NOW)
    fake.delete("v1", "Secret", push_secret_name("credit"), NS)
    plan = router_push.plan_router_config(fake, owner_of(fake), endpoint_spec(fake), config, 0.0)
    assert plan.written and plan.hash == expected_hash(fake, config)
    before = router_push.PUSH_RESULTS["no_key"]
    assert router_push.push_config(fake, owner_of(fake), plan, ["10.1.0.1"], config) == {}
    assert router_push.PUSH_RESULTS["no_key"] == before + 1
    assert routers.pushed == []


def test_a_push_secret_the_endpoint_does_not_control_is_never_signed_with(
    fake: FakeKube, config: OperatorConfig, routers: Routers
) -> None:
    """Whoever swapped in a Secret of that name holds its key: the operator must not sign
    configs with it (the ConfigMap path stays)."""
    fake.put(endpoint_obj())
    controller.reconcile(fake, config, NS, "credit", NOW)
    secret_key = ("v1", "Secret", NS, push_secret_name("credit"))
    fake.mutate(secret_key, lambda s: s["metadata"].update(ownerReferences=[]))
    plan = router_push.plan_router_config(fake, owner_of(fake), endpoint_spec(fake), config, 0.0)
    before = router_push.PUSH_RESULTS["no_key"]
    assert router_push.push_config(fake, owner_of(fake), plan, ["10.1.0.1"], config) == {}
    assert router_push.PUSH_RESULTS["no_key"] == before + 1
    assert routers.pushed == []


def owner_of(fake: FakeKube) -> Any:
    from mlkube.builders.names import EndpointRef

    return EndpointRef("credit", NS, stored(fake)["metadata"]["uid"])


def endpoint_spec(fake: FakeKube) -> Any:
    from mlkube.api.endpoint import OnlineEndpointSpec

    return OnlineEndpointSpec.model_validate(stored(fake)["spec"])
