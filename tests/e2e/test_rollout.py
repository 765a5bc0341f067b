"""Progressive rollouts on the real node: real model pods, real routers, real kube-proxy.

Each test gets its own restricted namespace and `credit` endpoint (blue = credit-risk-v3, green =
the candidate) serving blue at 100 %, then sets `spec.rollout` while a client keeps sending
requests through the endpoint's Service:
- a healthy candidate (credit-risk-v4) is promoted through 10 % -> 50 % (each step gated on the
  router's error rate) to 100 %, with no failed request at all;
- a broken candidate (examples/rollouts/credit-risk-v4b: a custom scoring script whose run()
  fails, HTTP 500) is rolled back by its error rate at the 10 % step: no request served by the
  stable fails, traffic is off the candidate within one interval + 2 s of the breach (the
  first failed answer), the endpoint is Degraded/Stalled naming metric, value and threshold,
  spec is untouched and the candidate is scaled to 0 after `abortScaleDownDelay`;
- a candidate that answers wrong (a custom script with other predictions) is rolled back by
  its agreement on mirrored traffic, before it ever serves a live request: zero failed requests.
The routers get every new split by the operator's signed push (docs/rollouts.md §6).
"""

from __future__ import annotations

import collections
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlkube.contract import API_VERSION, HEADER_DEPLOYMENT, KIND_MODEL
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_store import BUCKET
from mlkube.k8s import Kube
from mlkube.storage import publish
from support.node_store import store_env
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
REQUEST = (REPO / "examples" / "models" / "credit-risk" / "3" / "sample-request.json").read_bytes()
BROKEN = REPO / "examples" / "rollouts" / "credit-risk-v4b"
EP = "credit"
INTERVAL = 5.0  # seconds between measurements; the abort target is INTERVAL + 2 s
WRONG = """
def init():
    pass

def run(raw_data):
    import json
    return [0 for _ in json.loads(raw_data)["data"]]
"""


def errors_metric() -> dict[str, Any]:
    return {"name": "errors", "interval": f"{INTERVAL:g}s", "count": 2,
            "successCondition": "result <= 0.01", "failureCondition": "result > 0.05",
            "minSampleCount": 5, "provider": {"builtin": {"type": "errorRate"}}}  # fmt: skip


def agreement_metric() -> dict[str, Any]:
    return {"name": "agree", "interval": f"{INTERVAL:g}s", "count": 2,
            "successCondition": "result >= 0.98", "failureCondition": "result < 0.9",
            "minSampleCount": 5, "provider": {"builtin": {"type": "agreement"}}}  # fmt: skip


def weight_plan() -> dict[str, Any]:
    """The Done criterion's plan: 10 % -> 50 % -> 100 %, each step gated on the error rate."""
    return {"stable": "blue", "candidate": "green", "abortScaleDownDelay": "10s",
            "steps": [{"setWeight": 10}, {"analysis": {"metrics": ["errors"]}},
                      {"setWeight": 50}, {"analysis": {"metrics": ["errors"]}}],
            "metrics": [errors_metric()]}  # fmt: skip


def mirror_plan() -> dict[str, Any]:
    return {"stable": "blue", "candidate": "green", "abortScaleDownDelay": "10s",
            "steps": [{"setMirror": 100}, {"analysis": {"metrics": ["agree"]}},
                      {"setWeight": 50}],
            "metrics": [agreement_metric()]}  # fmt: skip


@dataclass
class Answer:
    at: float
    status: int  # 0: no HTTP answer (connection refused or reset)
    deployment: str | None


@dataclass
class Client:
    """Threads sending the sample request through the Service until stopped."""

    ip: str
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self) -> Answer:
        req = urllib.request.Request(
            f"http://{self.ip}/v2/models/credit-risk/infer", data=REQUEST, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                return Answer(time.time(), resp.status, resp.headers.get(HEADER_DEPLOYMENT))
        except urllib.error.HTTPError as exc:
            exc.read()
            return Answer(time.time(), exc.code, exc.headers.get(HEADER_DEPLOYMENT))
        except OSError:
            return Answer(time.time(), 0, None)

    def loop(self) -> None:
        while not self.stop.is_set():
            self.answers.append(self.send())

    def by(self, deployment: str | None) -> collections.Counter[int]:
        return collections.Counter(a.status for a in self.answers if a.deployment == deployment)


@pytest.fixture
def client_factory() -> Iterator[Any]:
    started: list[tuple[Client, list[threading.Thread]]] = []

    def start(ip: str, threads: int = 4) -> Client:
        client = Client(ip)
        workers = [threading.Thread(target=client.loop, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        started.append((client, workers))
        return client

    yield start
    for client, workers in started:
        client.stop.set()
        for worker in workers:
            worker.join(timeout=35)


def copy_sample_model(kube: Kube, name: str, namespace: str) -> None:
    """The sample Model (artifact already in the node's store) registered in `namespace`."""
    sample = kube.get(API_VERSION, KIND_MODEL, name, "default")
    assert sample is not None, f"sample Model {name} missing"
    spec = {k: v for k, v in sample["spec"].items() if k != "baseline"}
    kube.create({"apiVersion": API_VERSION, "kind": KIND_MODEL,
                 "metadata": {"name": name, "namespace": namespace}, "spec": spec})  # fmt: skip


def register_script_model(
    kube: Kube, node: RealNode, namespace: str, folder: Path, version: str
) -> str:
    """A custom (scoring script) credit-risk model published to the node's store."""
    with store_env(node.store_env()):
        uri, _ = publish(str(folder), f"s3://{BUCKET}", namespace=namespace,
                         name="credit-risk", version=version)  # fmt: skip
    name = f"credit-risk-v{version}"
    kube.create({
        "apiVersion": API_VERSION, "kind": KIND_MODEL,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modelName": "credit-risk", "version": version, "framework": "custom",
                 "entrypoint": {"path": "score.py"}, "artifact": {"uri": uri}},
    })  # fmt: skip
    return name


def models_ready(kube: Kube, namespace: str, names: list[str]) -> None:
    for name in names:
        wait_for(
            lambda n=name: ((kube.get(API_VERSION, KIND_MODEL, n, namespace) or {})
                            .get("status") or {}).get("phase") == "Ready",
            timeout=120, interval=0.5, what=f"Model {name} Ready",
        )  # fmt: skip


def endpoint(kube: Kube, namespace: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace)
    assert obj is not None
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), {})


def serve_blue_only(kube: Kube, namespace: str, candidate_model: str) -> str:
    """The endpoint at blue 100 % with the candidate deployed, Ready and routed; its Service IP."""
    spec = {"deployments": [{"name": "blue", "model": "credit-risk-v3", "replicas": 1},
                            {"name": "green", "model": candidate_model, "replicas": 1}],
            "traffic": {"blue": 100}}  # fmt: skip
    kube.create({"apiVersion": API_VERSION, "kind": "OnlineEndpoint",
                 "metadata": {"name": EP, "namespace": namespace}, "spec": spec})  # fmt: skip

    def ready() -> bool:
        obj = endpoint(kube, namespace)
        status = obj.get("status") or {}
        replicas = [d.get("readyReplicas") for d in status.get("deployments") or []]
        current = status.get("observedGeneration") == obj["metadata"]["generation"]
        return condition(obj, "Ready").get("status") == "True" and current and replicas == [1, 1]

    wait_for(ready, timeout=300, interval=1, what="endpoint credit Ready")
    service = kube.get("v1", "Service", EP, namespace)
    assert service is not None
    ip = str(service["spec"]["clusterIP"])
    wait_for(lambda: Client(ip).send().status == 200, timeout=60, interval=0.5,
             what="Service credit routing")  # fmt: skip
    return ip


def start_rollout(kube: Kube, namespace: str, plan: dict[str, Any]) -> None:
    kube.patch(API_VERSION, "OnlineEndpoint", EP,
               {"spec": {"traffic": {"blue": None, "green": 100}, "rollout": plan}},
               namespace)  # fmt: skip


def wait_phase(kube: Kube, namespace: str, phase: str, timeout: float) -> dict[str, Any]:
    """status.rollout once a rollout other than the first deploy's (InitialDeploy) is `phase`."""

    def reached() -> dict[str, Any] | None:
        rollout = (endpoint(kube, namespace).get("status") or {}).get("rollout") or {}
        started = rollout.get("reason") != "InitialDeploy"
        return rollout if rollout.get("phase") == phase and started else None

    found: dict[str, Any] = wait_for(
        reached, timeout=timeout, interval=0.2, what=f"rollout {phase}"
    )
    return found


def test_a_healthy_candidate_is_promoted_10_50_100_with_no_failed_request(
    credit_endpoint: str, kube: Kube, restricted_ns: str, client_factory: Any
) -> None:
    ns = restricted_ns
    for name in ("credit-risk-v3", "credit-risk-v4"):
        copy_sample_model(kube, name, ns)
    models_ready(kube, ns, ["credit-risk-v3", "credit-risk-v4"])
    ip = serve_blue_only(kube, ns, "credit-risk-v4")
    client = client_factory(ip)
    time.sleep(2)
    started = time.monotonic()
    start_rollout(kube, ns, weight_plan())
    rollout = wait_phase(kube, ns, "Promoted", timeout=300)
    took = time.monotonic() - started
    client.stop.set()
    time.sleep(1)
    statuses = collections.Counter(a.status for a in client.answers)
    print(f"\nhealthy rollout promoted in {took:.1f}s: {dict(statuses)}; "
          f"blue {dict(client.by('blue'))} green {dict(client.by('green'))}")  # fmt: skip
    assert statuses == {200: len(client.answers)}, statuses
    assert client.by("green")[200] > 0 and client.by("blue")[200] > 0
    assert rollout["reason"] == "Promoted"
    obj = endpoint(kube, ns)
    assert {k: v for k, v in obj["status"]["traffic"].items() if v} == {"green": 100}
    after = [Client(ip).send() for _ in range(100)]
    assert {(a.status, a.deployment) for a in after} == {(200, "green")}


def test_a_failing_candidate_is_rolled_back_within_an_interval_and_the_stable_never_fails(
    credit_endpoint: str,
    node_cluster: tuple[Cluster, RealNode],
    kube: Kube,
    restricted_ns: str,
    client_factory: Any,
) -> None:
    ns, node = restricted_ns, node_cluster[1]
    copy_sample_model(kube, "credit-risk-v3", ns)
    broken = register_script_model(kube, node, ns, BROKEN, "4b")
    models_ready(kube, ns, ["credit-risk-v3", broken])
    ip = serve_blue_only(kube, ns, broken)
    client = client_factory(ip)
    time.sleep(2)
    start_rollout(kube, ns, weight_plan())
    rollout = wait_phase(kube, ns, "Aborted", timeout=180)
    time.sleep(INTERVAL)  # the client keeps going: nothing may reach green any more
    client.stop.set()
    time.sleep(1)

    green = [a for a in client.answers if a.deployment == "green"]
    failed_green = [a for a in green if a.status != 200]
    assert failed_green, "the candidate never served (and failed) a live request"
    breach, off = failed_green[0].at, green[-1].at
    print(f"\nbroken candidate: blue {dict(client.by('blue'))}, green {dict(client.by('green'))}, "
          f"unrouted {dict(client.by(None))}; breach -> traffic off {off - breach:.2f}s "
          f"(target {INTERVAL + 2:.0f}s)")  # fmt: skip
    assert client.by("blue") == {200: sum(client.by("blue").values())}  # stable never failed
    assert client.by(None) == {}  # every request was answered by a deployment
    assert off - breach <= INTERVAL + 2.0
    assert rollout["abort"]["metric"] == "errors"
    assert rollout["abort"]["value"] > 0.05
    obj = endpoint(kube, ns)
    assert obj["spec"]["traffic"] == {"green": 100}  # spec is never edited
    assert {k: v for k, v in obj["status"]["traffic"].items() if v} == {"blue": 100}
    assert condition(obj, "Degraded")["reason"] == "RolloutAborted"
    assert condition(obj, "Stalled")["status"] == "True"
    assert "errors" in condition(obj, "Stalled")["message"]

    def scaled_down() -> bool:
        deps = kube.list("apps/v1", "Deployment", ns, label_selector="mlkube.dev/deployment=green")
        return len(deps) == 1 and deps[0]["spec"]["replicas"] == 0

    wait_for(scaled_down, timeout=60, interval=1, what="candidate scaled to 0 after the delay")


def test_a_candidate_that_answers_wrong_is_rolled_back_on_mirrored_traffic_alone(
    credit_endpoint: str,
    node_cluster: tuple[Cluster, RealNode],
    kube: Kube,
    restricted_ns: str,
    client_factory: Any,
    tmp_path: Path,
) -> None:
    ns, node = restricted_ns, node_cluster[1]
    copy_sample_model(kube, "credit-risk-v3", ns)
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "score.py").write_text(WRONG)
    wrong = register_script_model(kube, node, ns, tmp_path / "wrong", "4w")
    models_ready(kube, ns, ["credit-risk-v3", wrong])
    ip = serve_blue_only(kube, ns, wrong)
    client = client_factory(ip)
    time.sleep(2)
    start_rollout(kube, ns, mirror_plan())
    rollout = wait_phase(kube, ns, "Aborted", timeout=180)
    client.stop.set()
    time.sleep(1)
    statuses = collections.Counter((a.status, a.deployment) for a in client.answers)
    print(f"\nwrong candidate: {dict(statuses)}; abort: {rollout.get('abort')}")
    assert statuses == {(200, "blue"): len(client.answers)}  # never live, never failed
    assert rollout["abort"]["metric"] == "agree"
    assert rollout["abort"]["value"] < 0.9
    assert endpoint(kube, ns)["status"].get("mirror") in (None, {})
