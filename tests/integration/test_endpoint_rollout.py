"""Progressive rollouts end to end on the real control plane, with REAL router processes.

The operator runs in-process against the real API server; the endpoint's router pods are real
`mlkube_serving router` processes on loopback addresses (tests/support/local_routers.py plays
kubelet and cluster DNS for them), in front of stand-in model servers that answer 200 or 500.
Real requests flow through the routers; the operator scrapes their /metrics for the built-in
error rate, decides, and rewrites (and pushes) the router config. Proven here: a healthy
rollout promoted through setWeight and analysis steps; a candidate answering 5xx aborted by
its error rate, traffic off it within one interval + 2 s of the breach measurement, status
naming metric, value and threshold, Degraded/Stalled, spec untouched, the candidate scaled to
0 after the delay, then a retry promoting the fixed candidate; a rollout paused on no data
(noDataPolicy Inconclusive) and promoted by a request; a candidate giving wrong answers aborted
by the routers' agreement on mirrored copies alone, no client request ever answered by it; a
slow candidate aborted by a background analysis of its p90 latency relative to the stable's
while an untimed pause waits for a human.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import io
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.rollout_status import parse_rollout_request
from mlkube.builders.endpoint_router import build_router_deployment
from mlkube.builders.names import EndpointRef, deployment_name, router_name, service_host
from mlkube.builders.operator_config import parse_operator_config
from mlkube.cli.main import main
from mlkube.contract import ANNOTATION_ROLLOUT_REQUEST, API_VERSION, ROUTER_CONFIG_FILE
from mlkube.handlers.config import operator_config
from mlkube.k8s import ApiError, Kube
from support.endpoints import condition, create_ready_models, endpoint_object
from support.local_routers import (
    KWOK_HANDS_OFF,
    LocalRouters,
    StandInServer,
    local_routers,
    loopback_ips,
    stand_in_servers,
)
from support.operator import run_operator
from support.waiting import wait_for

EP = "credit"
INTERVAL = 2.0
BASE: dict[str, Any] = {
    "deployments": [
        {"name": "blue", "model": "credit-risk-v3", "replicas": 1},
        {"name": "green", "model": "credit-risk-v4", "replicas": 1},
    ],
    "traffic": {"blue": 100},
}


def errors_metric(**fields: Any) -> dict[str, Any]:
    return {"name": "errors", "interval": f"{INTERVAL:g}s", "count": 2,
            "successCondition": "result <= 0.05", "failureCondition": "result > 0.2",
            "minSampleCount": 5, "provider": {"builtin": {"type": "errorRate"}},
            **fields}  # fmt: skip


def rollout_spec(steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"stable": "blue", "candidate": "green", "steps": steps,
            "metrics": [errors_metric()], **fields}  # fmt: skip


@dataclass
class Traffic:
    """Requests sent through the routers by a client thread: (time, status)."""

    urls: list[str]
    answers: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64",
                                       "data": [1.0]}]}).encode()  # fmt: skip
        index = 0
        while not self.stop.is_set():
            url = self.urls[index % len(self.urls)] + "/v2/models/credit-risk/infer"
            index += 1
            request = urllib.request.Request(url, body, {"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    status = int(response.status)
            except urllib.error.HTTPError as err:
                status = err.code
            except OSError:
                status = 0
            self.answers.append((time.time(), status))
            self.stop.wait(0.005)


@contextlib.contextmanager
def sending(urls: list[str]) -> Iterator[Traffic]:
    traffic = Traffic(urls)
    thread = threading.Thread(target=traffic.run, name="client", daemon=True)
    thread.start()
    try:
        yield traffic
    finally:
        traffic.stop.set()
        thread.join(timeout=10)


@dataclass
class Env:
    kube: Kube
    namespace: str
    routers: LocalRouters
    servers: dict[str, StandInServer]
    kubeconfig: str

    def endpoint(self) -> dict[str, Any]:
        obj = self.kube.get(API_VERSION, "OnlineEndpoint", EP, self.namespace)
        assert obj is not None
        return obj

    def rollout(self) -> dict[str, Any]:
        return dict((self.endpoint().get("status") or {}).get("rollout") or {})

    def wait_phase(self, phase: str, timeout: float = 60, reason: str | None = None) -> Any:
        def reached() -> Any:
            self.routers.check()
            rollout = self.rollout()
            ok = rollout.get("phase") == phase and reason in (None, rollout.get("reason"))
            return rollout if ok else None

        try:
            return wait_for(reached, timeout=timeout, interval=0.1, what=f"rollout {phase}")
        except AssertionError as err:
            raise AssertionError(f"{err}; status.rollout: {self.rollout()}") from None

    def configmap_mirror(self) -> dict[str, int]:
        cm = self.kube.get("v1", "ConfigMap", router_name(EP), self.namespace) or {}
        return dict(json.loads(cm["data"][ROUTER_CONFIG_FILE])["mirror"])

    def configmap_traffic(self) -> tuple[dict[str, int], str]:
        cm = self.kube.get("v1", "ConfigMap", router_name(EP), self.namespace)
        assert cm is not None
        text = str(cm["data"][ROUTER_CONFIG_FILE])
        digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return dict(json.loads(text)["traffic"]), digest

    def routers_serve(self, traffic: dict[str, int], mirror: dict[str, int] | None = None) -> bool:
        """Every router process serves the ConfigMap's config, and it has this split (and
        this mirror, when given)."""
        want, digest = self.configmap_traffic()
        if {k: v for k, v in want.items() if v} != traffic or not self.routers.pods:
            return False
        if mirror is not None and self.configmap_mirror() != mirror:
            return False
        return all(p.config_state().get("hash") == digest for p in self.routers.pods.values())

    def cli(self, *argv: str) -> tuple[int, str]:
        """`mlkube ...` in-process against this cluster; (exit code, stdout)."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([*argv, "-n", self.namespace, "--kubeconfig", self.kubeconfig])
        return code, out.getvalue()

    def request(self, action: str) -> str:
        """`mlkube endpoint rollout <action> --wait`: the request id the operator handled."""
        code, out = self.cli("endpoint", "rollout", action, EP, "--wait", "--timeout", "60")
        assert code == 0, out
        request = parse_rollout_request(
            self.endpoint()["metadata"]["annotations"][ANNOTATION_ROLLOUT_REQUEST]
        )
        assert request.id in out and self.rollout().get("lastRequest") == request.id
        return request.id

    def events(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.kube.list("v1", "Event", self.namespace)
                if e["reason"] == reason and e["involvedObject"]["name"] == EP]  # fmt: skip


@contextlib.contextmanager
def rollout_env(
    kube: Kube, namespace: str, work: Path, green: str, sync_seconds: float = 0.5
) -> Iterator[Env]:
    """The operator, blue (ok) and green (`green` mode) servers, two real routers serving
    blue at 100 % (the state every rollout here starts from); the "kubelet" refreshes their
    config files from the ConfigMap every `sync_seconds`."""
    config = parse_operator_config(os.environ)
    ips = loopback_ips(2, uuid.uuid4().int)
    admin = os.environ["KUBECONFIG"]  # the CLI's (run_operator switches to the operator's)
    with contextlib.ExitStack() as stack:
        operator_config.cache_clear()
        stack.callback(operator_config.cache_clear)
        servers = stack.enter_context(stand_in_servers(work, {"blue": "ok", "green": green}))
        upstreams = {
            service_host(deployment_name(EP, name), namespace, config.cluster_domain): s.port
            for name, s in servers.items()
        }
        stack.enter_context(run_operator(namespace))
        create_ready_models(kube, namespace, work)
        # Blocked on a Model that does not exist, so the router Deployment can be created
        # first with kwok's hands-off annotation, as the endpoint's child.
        waiting = copy.deepcopy(BASE)
        waiting["deployments"][0]["model"] = "not-registered"
        created = kube.create(endpoint_object(EP, namespace, waiting))
        owner = EndpointRef(EP, namespace, created["metadata"]["uid"])
        router = build_router_deployment(owner, OnlineEndpointSpec.model_validate(BASE), config)
        router["spec"]["template"]["metadata"]["annotations"].update(KWOK_HANDS_OFF)
        kube.create(router)
        kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": BASE}, namespace)
        routers = LocalRouters(kube, namespace, EP, ips, work / "routers", upstreams, sync_seconds)
        stack.enter_context(local_routers(routers))
        env = Env(kube, namespace, routers, servers, admin)
        try:
            wait_for(lambda: (env.endpoint().get("status") or {}).get("traffic") == {"blue": 100}
                     and len(routers.pods) == 2 and env.routers_serve({"blue": 100}),
                     timeout=60, interval=0.1, what="two routers serving blue 100")  # fmt: skip
            yield env
        finally:
            routers.check()
            with contextlib.suppress(ApiError):
                kube.delete(API_VERSION, "OnlineEndpoint", EP, namespace)


def start_rollout(env: Env, rollout: dict[str, Any]) -> None:
    env.kube.patch(API_VERSION, "OnlineEndpoint", EP,
                   {"spec": {"traffic": {"blue": None, "green": 100}, "rollout": rollout}},
                   env.namespace)  # fmt: skip


def parse(at: str) -> float:
    return datetime.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def test_a_healthy_rollout_is_promoted_through_its_steps(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    with rollout_env(kube, namespace, tmp_path, green="ok") as env:
        urls = [p.url for p in env.routers.pods.values()]
        with sending(urls) as traffic:
            steps = [{"setWeight": 20}, {"analysis": {"metrics": ["errors"]}},
                     {"setWeight": 50}, {"analysis": {"metrics": ["errors"]}}]  # fmt: skip
            start_rollout(env, rollout_spec(steps))
            # Mid-rollout the routers really serve the step's split.
            wait_for(lambda: env.routers_serve({"blue": 80, "green": 20}), timeout=30,
                     interval=0.1, what="routers serving blue 80 / green 20")  # fmt: skip
            rollout = env.wait_phase("Promoted", timeout=90)
            wait_for(lambda: env.routers_serve({"green": 100}), timeout=30, interval=0.1,
                     what="routers serving green 100")  # fmt: skip
        # Promoted after the last step (stepIndex stays on it: rollout_steps.promote).
        assert rollout["reason"] != "InitialDeploy" and rollout["stepIndex"] == 3
        measured = [m for m in rollout["metrics"] if m["name"] == "errors"]
        assert measured and measured[0]["measurements"][-1]["phase"] == "Successful"
        assert measured[0]["measurements"][-1]["samples"] >= 5
        assert env.servers["green"].answered() and env.servers["blue"].answered()
        assert all(status == 200 for _, status in traffic.answers)
        wait_for(lambda: env.endpoint()["status"]["traffic"] == {"green": 100}, timeout=20,
                 interval=0.1, what="status.traffic green 100")  # fmt: skip
        for reason in ("RolloutStarted", "RolloutStep", "RolloutPromoted"):
            assert env.events(reason), reason
        assert condition(env.endpoint(), "Reconciling").get("status") != "True"


def test_a_candidate_answering_5xx_is_aborted_then_retried(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    # A kubelet-like file refresh (a minute): traffic leaves the candidate by the push alone.
    with rollout_env(kube, namespace, tmp_path, green="fail", sync_seconds=60) as env:
        urls = [p.url for p in env.routers.pods.values()]
        with sending(urls):
            steps = [{"setWeight": 30}, {"analysis": {"metrics": ["errors"]}}]
            start_rollout(env, rollout_spec(steps, abortScaleDownDelay="3s"))
            rollout = env.wait_phase("Aborted", timeout=60)
            wait_for(lambda: env.routers_serve({"blue": 100}), timeout=30, interval=0.05,
                     what="routers serving blue 100 again")  # fmt: skip
            serving_seen = time.time()  # an upper bound: the test polls after seeing Aborted
            time.sleep(1.0)  # traffic keeps flowing: none of it may reach green any more
        green = env.servers["green"].answered()
        assert green and all(status == 500 for _, status in green)
        breach = rollout["metrics"][0]["measurements"][-1]
        assert breach["phase"] == "Failed" and breach["value"] > 0.2
        # The last request the candidate answered (0 when it got none after the measurement;
        # resolution: the gap between its requests, ~0.05 s at this client's rate).
        traffic_off = max(0.0, green[-1][0] - parse(breach["at"]))
        first_5xx = green[-1][0] - green[0][0]
        sync, seen = env.routers.sync_seconds, serving_seen - parse(breach["at"])
        figure = (f"breach measurement -> traffic off the candidate: {traffic_off:.2f}s, "
                  f"routers seen serving startTraffic after {seen:.2f}s "
                  f"(interval {INTERVAL:g}s, config file refreshed every {sync:g}s); "
                  f"first 5xx -> traffic off: {first_5xx:.2f}s")  # fmt: skip
        assert traffic_off <= INTERVAL + 2.0
        abort = rollout["abort"]
        assert abort["metric"] == "errors" and abort["value"] == breach["value"]
        assert "result" in abort["condition"]
        obj = env.endpoint()
        assert obj["spec"]["traffic"] == {"green": 100}  # an abort never edits spec
        wait_for(lambda: condition(env.endpoint(), "Stalled").get("status") == "True", timeout=5,
                 interval=0.05, what="Stalled")  # fmt: skip
        obj = env.endpoint()
        for type_ in ("Degraded", "Stalled"):
            cond = condition(obj, type_)
            assert (cond.get("status"), cond.get("reason")) == ("True", "RolloutAborted")
            assert "spec wants {green: 100}, running {blue: 100}" in cond["message"]
            assert "errors" in cond["message"]
        assert env.events("RolloutAborted")
        _, view = env.cli("endpoint", "rollout", "status", EP)  # phase, metric, value, threshold
        assert "Aborted" in view and "errors" in view and "result > 0.2" in view, view
        # abortScaleDownDelay: the candidate's Deployment stays, at 0 replicas.
        green_deployment = deployment_name(EP, "green")
        wait_for(lambda: (kube.get("apps/v1", "Deployment", green_deployment, namespace) or {})
                 .get("spec", {}).get("replicas") == 0, timeout=20, interval=0.1,
                 what="green scaled to 0")  # fmt: skip
        assert env.wait_phase("Aborted")["scaledDown"] is True

        # Fixed candidate, retry: the rollout starts again and promotes.
        env.servers["green"].set_mode("ok")
        with sending(urls):
            id_ = env.request("retry")
            promoted = env.wait_phase("Promoted", timeout=90)
        assert promoted["lastRequest"] == id_
        wait_for(lambda: env.routers_serve({"green": 100}), timeout=30, interval=0.1,
                 what="routers serving green 100 after the retry")  # fmt: skip
        assert condition(env.endpoint(), "Stalled").get("status") == "False"
    print("\n" + figure)  # after the operator stopped: KopfRunner captures stdout while it runs


def test_no_data_pauses_until_a_promote_request(kube: Kube, namespace: str, tmp_path: Path) -> None:
    with rollout_env(kube, namespace, tmp_path, green="ok") as env:
        steps = [{"setWeight": 50}, {"analysis": {"metrics": ["errors"]}}]
        metric = errors_metric(count=1, noDataPolicy="Inconclusive")
        start_rollout(env, rollout_spec(steps, metrics=[metric]))
        paused = env.wait_phase("Paused", timeout=60, reason="Inconclusive")
        measurement = paused["metrics"][0]["measurements"][-1]
        assert measurement["phase"] == "NoData"
        # The conditions follow status.rollout in the same tick (one write later).
        wait_for(lambda: condition(env.endpoint(), "Reconciling").get("reason") == "RolloutPaused",
                 timeout=5, interval=0.05, what="Reconciling RolloutPaused")  # fmt: skip
        assert condition(env.endpoint(), "Reconciling").get("status") == "True"
        assert env.routers_serve({"blue": 50, "green": 50})  # paused where it stood
        time.sleep(2 * INTERVAL)
        assert env.rollout()["phase"] == "Paused"  # no data never passes by itself
        id_ = env.request("promote")
        promoted = env.wait_phase("Promoted", timeout=30)
        assert promoted["lastRequest"] == id_
        wait_for(lambda: env.routers_serve({"green": 100}), timeout=30, interval=0.1,
                 what="routers serving green 100")  # fmt: skip


def test_wrong_answers_on_mirrored_traffic_abort_before_any_live_request(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """A candidate that answers 200 with other predictions, measured by the routers' agreement
    on mirrored copies: aborted, mirror off, and not one client request answered by it."""
    with rollout_env(kube, namespace, tmp_path, green="wrong") as env:
        urls = [p.url for p in env.routers.pods.values()]
        agreement = {"name": "agreement", "interval": f"{INTERVAL:g}s", "count": 2,
                     "successCondition": "result >= 0.95", "minSampleCount": 5,
                     "provider": {"builtin": {"type": "agreement"}}}  # fmt: skip
        steps = [{"setMirror": 100}, {"analysis": {"metrics": ["agreement"]}}, {"setWeight": 50}]
        with sending(urls) as traffic:
            start_rollout(env, rollout_spec(steps, metrics=[agreement]))
            wait_for(lambda: env.servers["green"].answered(), timeout=30, interval=0.1,
                     what="mirrored copies reaching green")  # fmt: skip
            rollout = env.wait_phase("Aborted", timeout=60)
            wait_for(lambda: env.routers_serve({"blue": 100}, mirror={}), timeout=30,
                     interval=0.05, what="routers serving blue 100, no mirror")  # fmt: skip
            stopped = time.time()
            time.sleep(1.0)
        measurement = rollout["metrics"][0]["measurements"][-1]
        assert measurement["phase"] == "Failed" and measurement["value"] < 0.95
        assert rollout["abort"]["metric"] == "agreement"
        # Copies stop (one already queued in a router's mirror queue may still land just after).
        late = [t - stopped for t, _ in env.servers["green"].answered() if t > stopped]
        assert max(late, default=0.0) < 0.3, late
        # Every client request was answered 200 by blue: the candidate only saw copies.
        assert traffic.answers and all(status == 200 for _, status in traffic.answers)


def test_background_latency_relative_to_the_stable_aborts_a_slow_candidate(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Background analysis and a relative metric end to end: the step is an untimed pause
    (only a human would move it), so only the background p90 ratio can abort."""
    with rollout_env(kube, namespace, tmp_path, green="slow") as env:
        p90 = {
            "name": "p90",
            "interval": f"{INTERVAL:g}s",
            "count": 0,
            "successCondition": "result <= 2",
            "noDataPolicy": "Ignore",
            "minSampleCount": 3,
            "provider": {"builtin": {"type": "latency", "quantile": 0.9, "compare": "ratio"}},
        }
        steps = [{"setWeight": 30}, {"pause": {}}]
        background = {"metrics": ["p90"], "startingStep": 0}
        with sending([p.url for p in env.routers.pods.values()]) as traffic:
            start_rollout(env, rollout_spec(steps, metrics=[p90], backgroundAnalysis=background))
            rollout = env.wait_phase("Aborted", timeout=60)
            wait_for(lambda: env.routers_serve({"blue": 100}), timeout=30, interval=0.05,
                     what="routers serving blue 100 again")  # fmt: skip
        assert all(status == 200 for _, status in traffic.answers)
        metric = rollout["metrics"][0]
        assert (metric["name"], metric["background"], metric["phase"]) == ("p90", True, "Failed")
        last = metric["measurements"][-1]
        assert last["phase"] == "Failed" and last["value"] > 2
        assert last["value"] == pytest.approx(last["candidate"] / last["stable"])
        assert last["candidate"] >= 0.2 > last["stable"]  # green sleeps 0.2 s, blue answers
        abort = rollout["abort"]
        assert (abort["metric"], abort["condition"]) == ("p90", "result <= 2")
        assert env.servers["green"].answered()  # it had its 30 % before the abort
