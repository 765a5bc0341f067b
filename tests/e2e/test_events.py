"""Notifications on the real node (issue 13, Done means): `mlkube events listen` — a local
CloudEvents receiver registered as an EventSink, run as a user runs it (a subprocess) — shows the
`model.registered`, `rollout.*` and `drift.detected` events of real pods and real traffic.

The e2e operator is a local process (conftest `credit_endpoint`: `start_operator`, dev mode), so
its delivery may reach a loopback receiver. In one restricted namespace the test registers two
versions of a drift-monitored model (credit-risk's ONNX artifact with an N(0, 1) baseline, as
test_endpoint_drift.py), deploys both (blue 100 %), rolls green out 10 % -> 50 % -> 100 % gated
on the router's error rate while a client sends baseline-like rows, then sends shifted rows to
the promoted green until its drift sidecar reports drift. Each occurrence must arrive once, under
its own id (the listener prints a redelivery of the same id only once, so a second id for the
same occurrence — or a missing one — fails here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkube.contract import API_VERSION, KIND_MODEL
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_store import BUCKET
from mlkube.k8s import Kube
from mlkube.storage import publish
from mlkube_serving.drift.profile import build_profile, write_profile
from support.node_store import store_env
from support.operator import stop_process
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "examples" / "models" / "credit-risk" / "3"
EP, NAME = "events", "drifty"
WINDOW, FEATURES, ROWS = 200, 20, 10
PREFIX = "dev.mlkube."
REGISTERED = f"{PREFIX}model.registered.v1"
STARTED, STEP, PROMOTED = (f"{PREFIX}rollout.{t}.v1" for t in ("started", "step", "promoted"))
DRIFT = f"{PREFIX}drift.detected.v1"
PLAN: dict[str, Any] = {
    "stable": "blue", "candidate": "green",
    "steps": [{"setWeight": 10}, {"analysis": {"metrics": ["errors"]}},
              {"setWeight": 50}, {"analysis": {"metrics": ["errors"]}}],
    "metrics": [{"name": "errors", "interval": "3s", "count": 2,
                 "successCondition": "result <= 0.01", "failureCondition": "result > 0.05",
                 "minSampleCount": 3, "provider": {"builtin": {"type": "errorRate"}}}],
}  # fmt: skip


@dataclass
class Listener:
    """`mlkube events listen --json` as a subprocess: each event it prints, parsed."""

    process: subprocess.Popen[str]
    stderr: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                try:
                    event = json.loads(line)
                except ValueError:  # not an event: kept, so a failure message shows it
                    event = {"type": None, "unparsed": line[:500]}
                with self.lock:
                    self.events.append(event)

    def of(self, type_: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("type") == type_]

    def wait(self, type_: str, n: int, timeout: float, what: str) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            assert self.process.poll() is None, f"listener exited: {self.log()}"
            found = self.of(type_)
            return found if len(found) >= n else None

        try:
            result: list[dict[str, Any]] = wait_for(enough, timeout=timeout, interval=0.5,
                                                    what=what)  # fmt: skip
        except AssertionError as exc:
            with self.lock:
                seen = [(e.get("type"), e.get("subject")) for e in self.events]
            raise AssertionError(f"{exc}; received so far: {seen}; listener: {self.log()}") from exc
        return result

    def log(self) -> str:
        return self.stderr.read_text()[-2000:] if self.stderr.exists() else ""


@pytest.fixture
def listener(
    node_cluster: tuple[Cluster, RealNode], kube: Kube, restricted_ns: str, tmp_path: Path
) -> Iterator[Listener]:
    stderr = tmp_path / "listen.err"
    argv = [sys.executable, "-m", "mlkube", "events", "listen", "-n", restricted_ns, "--json",
            "--kubeconfig", str(node_cluster[0].kubeconfig), "--timeout", "900"]  # fmt: skip
    with stderr.open("w") as err:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
    listen = Listener(process, stderr)
    reader = threading.Thread(target=listen.read, daemon=True)
    reader.start()

    def picked_up() -> bool:
        assert process.poll() is None, f"listener exited: {listen.log()}"
        sinks = kube.list(API_VERSION, "EventSink", restricted_ns)
        return any(((s.get("status") or {}).get("observedGeneration") or 0) > 0 for s in sinks)

    try:
        wait_for(picked_up, timeout=60, interval=0.5, what="the operator picked the sink up")
        yield listen
    finally:
        stop_process(process, grace=10)
        reader.join(timeout=10)


def register_models(kube: Kube, node: RealNode, ns: str, folder: Path) -> list[str]:
    """drifty-v1 and -v2: the credit-risk ONNX model with an N(0, 1) baseline profile."""
    rng = np.random.default_rng(7)
    columns = {f"f{i}": rng.normal(0.0, 1.0, 5000) for i in range(FEATURES)}
    profile = build_profile(columns, window_size=WINDOW, model=NAME, bootstrap_windows=100)
    write_profile(profile, folder / "profile.json")
    names = []
    with store_env(node.store_env()):
        store = f"s3://{BUCKET}"
        baseline, facts = publish(str(folder / "profile.json"), store, namespace=ns,
                                  name=f"{NAME}-baseline", version="1")  # fmt: skip
        for version in ("1", "2"):
            uri, _ = publish(str(ARTIFACT), store, namespace=ns, name=NAME, version=version)
            kube.create({
                "apiVersion": API_VERSION, "kind": KIND_MODEL,
                "metadata": {"name": f"{NAME}-v{version}", "namespace": ns},
                "spec": {"modelName": NAME, "version": version, "framework": "onnx",
                         "artifact": {"uri": uri},
                         "baseline": {"uri": baseline, "digest": facts.digest}},
            })  # fmt: skip
            names.append(f"{NAME}-v{version}")
    return names


def deploy(kube: Kube, ns: str) -> str:
    """The endpoint at blue 100 % with green deployed, both drift-monitored; its Service IP."""
    drift = {"enabled": True, "sampleRate": 1.0, "windowSize": WINDOW}
    spec = {"deployments": [{"name": "blue", "model": f"{NAME}-v1", "replicas": 1, "drift": drift},
                            {"name": "green", "model": f"{NAME}-v2", "replicas": 1,
                             "drift": drift}],
            "traffic": {"blue": 100}}  # fmt: skip
    kube.create({"apiVersion": API_VERSION, "kind": "OnlineEndpoint",
                 "metadata": {"name": EP, "namespace": ns}, "spec": spec})  # fmt: skip

    def ready() -> bool:
        obj = kube.get(API_VERSION, "OnlineEndpoint", EP, ns) or {"metadata": {}}
        status = obj.get("status") or {}
        conds = status.get("conditions") or []
        ok = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
        replicas = [d.get("readyReplicas") for d in status.get("deployments") or []]
        current = status.get("observedGeneration") == obj["metadata"].get("generation")
        return ok and current and replicas == [1, 1]

    wait_for(ready, timeout=300, interval=1, what=f"endpoint {EP} Ready with blue and green")
    service = kube.get("v1", "Service", EP, ns)
    assert service is not None
    ip = str(service["spec"]["clusterIP"])
    rng = np.random.default_rng(3)
    wait_for(lambda: send(ip, rng, 0.0) == 200, timeout=60, interval=0.5,
             what=f"Service {EP} routing")  # fmt: skip
    return ip


def send(ip: str, rng: np.random.Generator, shift: float) -> int:
    """One request of ROWS rows drawn from N(shift, 1); its HTTP status (0: no answer)."""
    rows = rng.normal(shift, 1.0, (ROWS, FEATURES)).astype(np.float32)
    body = {"inputs": [{"name": "X", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}  # fmt: skip
    req = urllib.request.Request(
        f"http://{ip}/v2/models/{NAME}/infer", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
    except OSError:
        return 0


def test_a_local_receiver_gets_registered_rollout_and_drift_events(
    credit_endpoint: str,
    node_cluster: tuple[Cluster, RealNode],
    kube: Kube,
    restricted_ns: str,
    listener: Listener,
    tmp_path: Path,
) -> None:
    ns, node = restricted_ns, node_cluster[1]
    started = time.monotonic()
    models = register_models(kube, node, ns, tmp_path)
    registered = listener.wait(REGISTERED, 2, timeout=120, what="model.registered for both Models")
    assert sorted(e["subject"] for e in registered) == [f"Model/{ns}/{m}" for m in models]

    ip = deploy(kube, ns)
    stop = threading.Event()
    statuses: list[int] = []

    def client() -> None:  # baseline-like rows: the error-rate analysis needs samples
        rng = np.random.default_rng()
        while not stop.is_set():
            statuses.append(send(ip, rng, 0.0))

    workers = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        kube.patch(API_VERSION, "OnlineEndpoint", EP,
                   {"spec": {"traffic": {"blue": None, "green": 100}, "rollout": PLAN}},
                   ns)  # fmt: skip
        try:
            [promoted] = listener.wait(PROMOTED, 1, timeout=240, what="rollout.promoted")
        except AssertionError as exc:
            obj = kube.get(API_VERSION, "OnlineEndpoint", EP, ns) or {}
            rollout = (obj.get("status") or {}).get("rollout")
            raise AssertionError(f"{exc}\nstatus.rollout: {json.dumps(rollout)}") from exc
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=35)
    # Delivery order is not promised: the earlier events may still be on their way.
    [rollout_started] = listener.wait(STARTED, 1, timeout=30, what="rollout.started")
    steps = listener.wait(STEP, len(PLAN["steps"]), timeout=30, what="a rollout.step per step")
    run = (rollout_started["data"]["revision"], rollout_started["data"]["startedAt"])
    assert (promoted["data"]["revision"], promoted["data"]["startedAt"]) == run
    indexes = sorted(e["data"]["stepIndex"] for e in steps)
    # Every step reached, each once: a second id for one step would show as a repeated index.
    assert indexes == list(range(len(PLAN["steps"]))), indexes
    assert all(e["subject"] == f"OnlineEndpoint/{ns}/{EP}" for e in [*steps, promoted])
    assert statuses and set(statuses) == {200}, f"failed requests during the rollout: {statuses}"

    # Shifted rows to the promoted green: two windows, every row sampled by its sidecar.
    rng = np.random.default_rng(11)
    shifted = [send(ip, rng, 2.0) for _ in range(2 * WINDOW // ROWS)]
    assert set(shifted) == {200}, shifted
    drift = listener.wait(DRIFT, 1, timeout=120, what="drift.detected after shifted traffic")
    assert any(e["data"]["deployment"] == "green" for e in drift), drift
    assert all(e["data"]["endpoint"] == EP for e in drift)

    ids = [e.get("id") for e in listener.events]
    assert len(ids) == len(set(ids)), ids
    print(f"\n{len(ids)} events in {time.monotonic() - started:.1f}s: "
          f"{sorted({e['type'].removeprefix(PREFIX) for e in listener.events})}")  # fmt: skip
