"""The rollout loop's pass against the in-memory API (docs/rollouts.md §2, §7): the children
follow the running split, status.rollout is written only when it changes, an abort puts the
traffic back at once with Degraded/Stalled and the spec untouched, the candidate is scaled
down after the delay, and a request is acted on once."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest

from mlkube.builders.names import COMPONENT_ROUTER, deployment_name, pod_selector, router_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION, ROUTER_CONFIG_FILE
from mlkube.controllers import endpoint as controller
from mlkube.controllers import endpoint_rollout as loop
from mlkube.controllers import router_poll
from mlkube.reconcile import rollout_measure
from mlkube.reconcile.router_config import RouterState
from support.cluster_objects import NS, endpoint_obj
from support.fake_kube import FakeKube, Key
from support.rollout_ticks import T0

EP: Key = (API_VERSION, "OnlineEndpoint", NS, "credit")
ROLLOUT = {
    "stable": "blue", "candidate": "green", "abortScaleDownDelay": "30s",
    "steps": [{"setWeight": 10}, {"analysis": {"metrics": ["errors"]}}, {"setWeight": 50}],
    "metrics": [{"name": "errors", "interval": "10s", "count": 1,
                 "successCondition": "result <= 0.01",
                 "provider": {"builtin": {"type": "errorRate"}}}],
}  # fmt: skip


class Routers:
    """Router replicas that serve whatever the ConfigMap says (`lagging`: they do not)."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake
        self.lagging = False

    def states(self, hosts: list[str], *_: Any) -> list[RouterState]:
        cm = self.fake.stored("v1", "ConfigMap", router_name("credit"), NS)
        text = cm["data"][ROUTER_CONFIG_FILE]
        value = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return [RouterState(None if self.lagging else value) for _ in hosts]


class Measured:
    """What the error-rate provider answers (candidate's rate over `samples` requests)."""

    def __init__(self) -> None:
        self.rate = 0.0
        self.calls: list[Any] = []

    def measure(self, obj: Any, metric: Any, kube: Any, config: Any, state: Any) -> Any:
        self.calls.append(state)
        if state is None:
            return rollout_measure.RawMeasurement(baseline=True), "window"
        return rollout_measure.RawMeasurement(candidate=self.rate, candidate_samples=100), "w"


@pytest.fixture
def routers(fake: FakeKube, monkeypatch: pytest.MonkeyPatch) -> Routers:
    fake_routers = Routers(fake)
    monkeypatch.setattr(router_poll, "router_config_states", fake_routers.states)
    fake.put({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "router-a", "namespace": NS,
                           "labels": pod_selector("credit", COMPONENT_ROUTER)},
              "spec": {"containers": [{"name": "router"}]},
              "status": {"phase": "Running", "podIP": "10.1.0.1",
                         "conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip
    return fake_routers


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> Measured:
    provider = Measured()
    monkeypatch.setattr(loop, "measure_metric", provider.measure)
    return provider


def make_available(fake: FakeKube, deployment: str, name: str | None = None) -> None:
    def done(obj: dict[str, Any]) -> None:
        want = int(obj["spec"].get("replicas", 1))
        obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": want,
                         "updatedReplicas": want, "readyReplicas": want,
                         "availableReplicas": want,
                         "conditions": [{"type": "Available", "status": "True"}]}  # fmt: skip

    fake.mutate(("apps/v1", "Deployment", NS, name or deployment_name("credit", deployment)), done)


def served_traffic(fake: FakeKube) -> dict[str, int]:
    cm = fake.stored("v1", "ConfigMap", router_name("credit"), NS)
    return dict(json.loads(cm["data"][ROUTER_CONFIG_FILE])["traffic"])


def endpoint(fake: FakeKube) -> dict[str, Any]:
    return fake.stored(*EP[:2], EP[3], NS)


def condition(fake: FakeKube, type_: str) -> dict[str, Any]:
    return next(c for c in endpoint(fake)["status"]["conditions"] if c["type"] == type_)


def tick(fake: FakeKube, config: OperatorConfig, memory: loop.ProviderMemory, at: float) -> Any:
    return loop.rollout_pass(fake, config, NS, "credit", memory, T0 + dt.timedelta(seconds=at))


def start(fake: FakeKube, config: OperatorConfig) -> None:
    """blue serves 100 %; then the spec asks for green at 100 % through a rollout."""
    fake.put(endpoint_obj(traffic={"blue": 100}))
    controller.reconcile(fake, config, NS, "credit", "2026-11-30T11:59:00Z")
    make_available(fake, "blue")
    make_available(fake, "", router_name("credit"))
    assert endpoint(fake)["status"]["traffic"] == {"blue": 100}
    fake.mutate(EP, lambda o: o["spec"].update(traffic={"green": 100}, rollout=ROLLOUT))
    fake.mutate(EP, lambda o: o["metadata"].update(generation=2))
    controller.reconcile(fake, config, NS, "credit", "2026-11-30T12:00:00Z")


def test_a_healthy_rollout_walks_its_steps_and_promotes(
    fake: FakeKube, config: OperatorConfig, routers: Routers, measured: Measured
) -> None:
    start(fake, config)
    # A new revision: nothing of its plan runs before the loop starts it.
    assert served_traffic(fake) == {"blue": 100, "green": 0}
    memory = loop.ProviderMemory()
    outcome = tick(fake, config, memory, 0)
    assert [e[1] for e in outcome.events] == ["RolloutStarted"]
    assert endpoint(fake)["status"]["rollout"]["reason"] == "WaitingForCandidate"
    assert condition(fake, "Reconciling")["reason"] == "RolloutProgressing"
    make_available(fake, "green")
    tick(fake, config, memory, 1)
    assert served_traffic(fake) == {"blue": 90, "green": 10}
    tick(fake, config, memory, 2)  # the routers serve it: the analysis starts, baseline taken
    assert endpoint(fake)["status"]["rollout"]["stepIndex"] == 1
    assert measured.calls == [None]
    version = endpoint(fake)["metadata"]["resourceVersion"]
    idle = tick(fake, config, memory, 5)
    assert endpoint(fake)["metadata"]["resourceVersion"] == version  # an idle tick writes nothing
    assert idle.delay is not None and 0 < idle.delay <= 5
    tick(fake, config, memory, 12)  # measured: 0 % errors, count 1 -> next step
    assert served_traffic(fake) == {"blue": 50, "green": 50}
    tick(fake, config, memory, 13)
    rollout = endpoint(fake)["status"]["rollout"]
    assert rollout["phase"] == "Promoted"
    assert served_traffic(fake) == {"green": 100}
    assert condition(fake, "Reconciling")["status"] == "False"
    final = tick(fake, config, memory, 14)
    assert final.delay is None  # nothing left: the loop ends


def test_an_error_rate_breach_aborts_at_once_and_scales_the_candidate_down_later(
    fake: FakeKube, config: OperatorConfig, routers: Routers, measured: Measured
) -> None:
    start(fake, config)
    spec_before = json.dumps(endpoint(fake)["spec"], sort_keys=True)
    memory = loop.ProviderMemory()
    make_available(fake, "green")
    for second in (0, 1, 2):
        tick(fake, config, memory, second)
    measured.rate = 0.5
    outcome = tick(fake, config, memory, 12)
    assert served_traffic(fake) == {"blue": 100, "green": 0}  # in the same pass
    rollout = endpoint(fake)["status"]["rollout"]
    assert rollout["phase"] == "Aborted" and rollout["abort"]["metric"] == "errors"
    assert rollout["abort"]["value"] == 0.5
    assert "RolloutAborted" in [e[1] for e in outcome.events]
    stalled = condition(fake, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "RolloutAborted")
    assert "spec wants {green: 100}, running {blue: 100}" in stalled["message"]
    assert condition(fake, "Degraded")["status"] == "True"
    assert json.dumps(endpoint(fake)["spec"], sort_keys=True) == spec_before
    green = ("apps/v1", "Deployment", deployment_name("credit", "green"), NS)
    assert fake.stored(*green)["spec"]["replicas"] == 1  # kept for abortScaleDownDelay
    assert outcome.delay is not None and 29 <= outcome.delay <= 30
    later = tick(fake, config, memory, 12 + 31)
    assert fake.stored(*green)["spec"]["replicas"] == 0
    assert endpoint(fake)["status"]["rollout"]["scaledDown"] is True
    assert later.delay is None


def test_a_request_is_handled_once_and_retry_starts_again(
    fake: FakeKube, config: OperatorConfig, routers: Routers, measured: Measured
) -> None:
    start(fake, config)
    memory = loop.ProviderMemory()
    make_available(fake, "green")
    tick(fake, config, memory, 0)
    revision = endpoint(fake)["status"]["rollout"]["revision"]

    def request(action: str, id_: str) -> None:
        value = json.dumps({"action": action, "id": id_, "revision": revision})
        fake.mutate(EP, lambda o: o["metadata"].setdefault("annotations", {}).update(
            {"mlkube.dev/rollout-request": value}))  # fmt: skip

    request("abort", "r1")
    tick(fake, config, memory, 1)
    assert endpoint(fake)["status"]["rollout"]["phase"] == "Aborted"
    assert endpoint(fake)["status"]["rollout"]["lastRequest"] == "r1"
    assert served_traffic(fake) == {"blue": 100, "green": 0}
    request("retry", "r2")
    outcome = tick(fake, config, memory, 2)
    assert "RolloutStarted" in [e[1] for e in outcome.events]
    tick(fake, config, memory, 3)
    assert endpoint(fake)["status"]["rollout"]["phase"] == "Progressing"
    assert served_traffic(fake) == {"blue": 90, "green": 10}
    again = tick(fake, config, memory, 4)  # the same request id again: nothing new
    assert "RolloutStarted" not in [e[1] for e in again.events]


def test_a_restarted_operator_takes_a_fresh_baseline_before_measuring(
    fake: FakeKube, config: OperatorConfig, routers: Routers, measured: Measured
) -> None:
    start(fake, config)
    make_available(fake, "green")
    memory = loop.ProviderMemory()
    for second in (0, 1, 2):
        tick(fake, config, memory, second)
    assert measured.calls == [None]  # the analysis step's baseline
    restarted = loop.ProviderMemory()  # an operator restart: the scrapes are gone
    due = tick(fake, config, restarted, 12)
    errors = endpoint(fake)["status"]["rollout"]["metrics"][0]
    assert measured.calls == [None, None] and errors["count"] == 0  # a baseline, not a sliver
    assert due.delay is not None and due.delay >= 10  # one interval later
    tick(fake, config, restarted, 22)
    assert measured.calls[-1] == "window"  # a whole interval measured: the step passed
    assert endpoint(fake)["status"]["rollout"]["stepIndex"] == 2


def route_weights(fake: FakeKube) -> dict[str, int]:
    from mlkube.builders.endpoint_route import HTTPROUTE_API_VERSION

    route = fake.stored(HTTPROUTE_API_VERSION, "HTTPRoute", "credit", NS)
    refs = route["spec"]["rules"][-1]["backendRefs"]  # the split (the others pin by header)
    by_service = {ref["name"]: int(ref.get("weight", 1)) for ref in refs}
    return {d: by_service.get(deployment_name("credit", d), 0) for d in ("blue", "green")}


def test_a_gateway_api_endpoint_rolls_by_httproute_weights_and_aborts_to_its_start(
    fake: FakeKube, config: OperatorConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No router behind a Gateway: the running split is the HTTPRoute's weights (the Gateway
    applies what it says), the metric comes from another provider, and an abort puts every
    request back on the stable in the same pass."""
    import dataclasses

    from mlkube.builders.endpoint_route import HTTPROUTE_API_VERSION
    from mlkube.builders.operator_config import GatewayParent

    # A stateless provider (Prometheus here): every answer is a measurement, a breach.
    answer = rollout_measure.RawMeasurement(candidate=0.5, candidate_samples=1)
    monkeypatch.setattr(loop, "measure_metric", lambda *_: (answer, None))
    fake.kinds.add((HTTPROUTE_API_VERSION, "HTTPRoute"))
    config = dataclasses.replace(config, default_gateway=GatewayParent("public", "infra"))
    prom = {"prometheus": {"address": "http://prom.monitoring.svc:9090", "query": "up"}}
    metric: dict[str, Any] = {**ROLLOUT["metrics"][0], "provider": prom}  # type: ignore[index]
    plan = {**ROLLOUT, "metrics": [metric]}
    fake.put(endpoint_obj(traffic={"blue": 100}, trafficBackend="gateway-api"))
    controller.reconcile(fake, config, NS, "credit", "2026-11-30T11:59:00Z")
    make_available(fake, "blue")
    fake.mutate(EP, lambda o: o["spec"].update(traffic={"green": 100}, rollout=plan))
    fake.mutate(EP, lambda o: o["metadata"].update(generation=2))
    controller.reconcile(fake, config, NS, "credit", "2026-11-30T12:00:00Z")
    assert route_weights(fake) == {"blue": 100, "green": 0}  # nothing of the plan yet
    make_available(fake, "green")
    memory = loop.ProviderMemory()
    tick(fake, config, memory, 0)
    assert route_weights(fake) == {"blue": 90, "green": 10}
    tick(fake, config, memory, 1)
    assert endpoint(fake)["status"]["rollout"]["reason"] == "StepAnalysis"
    tick(fake, config, memory, 11)
    rollout = endpoint(fake)["status"]["rollout"]
    assert (rollout["phase"], rollout["abort"]["metric"]) == ("Aborted", "errors")
    assert route_weights(fake) == {"blue": 100, "green": 0}
    assert condition(fake, "Stalled")["status"] == "True"
