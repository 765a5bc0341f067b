"""The closed loop on the real node, declared in YAML: an endpoint whose deployment monitors
drift (a Model with a baseline profile of N(0, 1) features, every request sampled, a small
window) and a Pipeline with `triggers: [{onDrift: {endpoint, cooldown: 1h}}]` whose steps
train (a real pod), evaluate, register and deploy a 10 % canary. Shifted inputs through the
endpoint's Service → the drift sidecar's window drifts → the operator's endpoint status shows
the episode → the Pipeline controller starts exactly one run (more shifted traffic while it
runs starts no other) → a new Model Ready → serving a canary share on the endpoint. The loop's
timings are printed."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkube.contract import API_VERSION, KIND_MODEL, KIND_PIPELINE, KIND_PIPELINE_RUN
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_store import BUCKET
from mlkube.k8s import Kube
from mlkube.storage import publish
from mlkube_serving.drift.profile import build_profile, write_profile
from support.node_store import store_env
from support.pipeline_e2e import (
    deployment_ready,
    describe,
    print_timings,
    ready,
    sample_train_step,
    train_evaluate_register,
    wait_run,
)
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "examples" / "models" / "credit-risk" / "3"
NS, MODEL, EP, PIPELINE = "default", "loop-v1", "loop", "loop-retrain"
WINDOW, FEATURES, ROWS = 200, 20, 10


@pytest.fixture(scope="module")
def loop_endpoint(
    credit_endpoint: str, node_cluster: tuple[Cluster, RealNode], kube: Kube,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:  # fmt: skip
    """A Model with a N(0, 1) baseline and an endpoint sampling every request; its Service IP."""
    rng = np.random.default_rng(7)
    columns = {f"f{i}": rng.normal(0.0, 1.0, 5000) for i in range(FEATURES)}
    profile = build_profile(columns, window_size=WINDOW, model="loop", bootstrap_windows=100)
    folder = tmp_path_factory.mktemp("baseline")
    write_profile(profile, folder / "loop.profile.json")
    with store_env(node_cluster[1].store_env()):
        store = f"s3://{BUCKET}"
        uri, _ = publish(str(ARTIFACT), store, namespace=NS, name="loop", version="1")
        baseline, facts = publish(str(folder / "loop.profile.json"), store, namespace=NS,
                                  name="loop-baseline", version="1")  # fmt: skip
    kube.create({
        "apiVersion": API_VERSION, "kind": KIND_MODEL,
        "metadata": {"name": MODEL, "namespace": NS},
        "spec": {"modelName": "loop", "version": "1", "framework": "onnx",
                 "artifact": {"uri": uri}, "baseline": {"uri": baseline, "digest": facts.digest}},
    })  # fmt: skip
    kube.create({
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": EP, "namespace": NS},
        "spec": {"deployments": [{"name": "blue", "model": MODEL, "replicas": 1,
                                  "drift": {"enabled": True, "sampleRate": 1.0,
                                            "windowSize": WINDOW}}],
                 "traffic": {"blue": 100}},
    })  # fmt: skip
    wait_for(lambda: ready(kube.get(API_VERSION, "OnlineEndpoint", EP, NS)), timeout=180,
             interval=1, what="endpoint loop Ready")  # fmt: skip
    service = kube.get("v1", "Service", EP, NS)
    assert service is not None
    yield service["spec"]["clusterIP"]
    # Free the node for the next modules (the pods go with the endpoint).
    kube.delete(API_VERSION, KIND_PIPELINE, PIPELINE, NS)
    kube.delete(API_VERSION, "OnlineEndpoint", EP, NS)
    for model in kube.list(API_VERSION, KIND_MODEL, NS):
        if model["spec"]["modelName"] in ("loop", "loop-risk"):
            kube.delete(API_VERSION, KIND_MODEL, model["metadata"]["name"], NS)


def loop_pipeline(train: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": KIND_PIPELINE,
        "metadata": {"name": PIPELINE, "namespace": NS},
        "spec": {
            # C differs from the sample's default: a new model, not credit-retrain's cache entry.
            "parameters": [{"name": "C", "type": "number", "default": "0.5"}],
            "steps": [
                *train_evaluate_register(train, "loop-risk"),
                {"name": "deploy", "type": "deploy",
                 "deploy": {"endpoint": EP, "model": {"step": "register"}, "canaryWeight": 10}},
            ],
            "triggers": [{"name": "drift", "onDrift": {"endpoint": EP, "cooldown": "1h"}}],
        },
    }  # fmt: skip


def send(ip: str, rows: np.ndarray) -> None:
    body = {"inputs": [{"name": "X", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}  # fmt: skip
    req = urllib.request.Request(
        f"http://{ip}/v2/models/loop/infer", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def shifted(ip: str, rng: np.random.Generator, windows: int = 2) -> None:
    for _ in range(windows * WINDOW // ROWS):
        send(ip, rng.normal(2.0, 1.0, (ROWS, FEATURES)).astype(np.float32))


def episode(kube: Kube) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "OnlineEndpoint", EP, NS) or {}
    deps = (obj.get("status") or {}).get("deployments") or []
    drift = next((d.get("drift") or {} for d in deps if d.get("name") == "blue"), {})
    found: dict[str, Any] = drift.get("episode") or {}
    return found


def runs(kube: Kube) -> list[dict[str, Any]]:
    return kube.list(
        API_VERSION, KIND_PIPELINE_RUN, NS, label_selector=f"mlkube.dev/pipeline={PIPELINE}"
    )


def test_drift_starts_one_retrain_that_ends_as_a_canary(loop_endpoint: str, kube: Kube) -> None:
    kube.create(loop_pipeline(sample_train_step(kube)))
    wait_for(lambda: ready(kube.get(API_VERSION, KIND_PIPELINE, PIPELINE, NS)), timeout=30,
             interval=0.5, what="Pipeline Ready")  # fmt: skip
    assert runs(kube) == []
    rng = np.random.default_rng(11)
    t0 = time.monotonic()
    shifted(loop_endpoint, rng)
    sent = time.monotonic()
    wait_for(lambda: episode(kube).get("active"), timeout=120, interval=0.25,
             what="drift episode active in the endpoint status")  # fmt: skip
    detected = time.monotonic()
    (run,) = wait_for(
        lambda: runs(kube), timeout=60, interval=0.25, what="a PipelineRun started by drift"
    )
    created = time.monotonic()
    name = run["metadata"]["name"]
    assert run["spec"]["trigger"]["type"] == "drift", run["spec"]
    # More shifted traffic while the run goes on: the episode is the same, no second run.
    shifted(loop_endpoint, rng, windows=1)
    done = wait_run(kube, NS, name, timeout=300)
    succeeded = time.monotonic()
    print_timings(f"drift-started run {name}", done, succeeded - created)
    assert done["status"]["phase"] == "Succeeded", describe(done)
    (produced,) = done["status"]["producedModels"]
    assert ready(kube.get(API_VERSION, KIND_MODEL, produced, NS))
    wait_for(lambda: deployment_ready(kube, NS, EP, produced), timeout=180, interval=0.5,
             what=f"canary {produced} Ready")  # fmt: skip
    canary = time.monotonic()
    endpoint = kube.get(API_VERSION, "OnlineEndpoint", EP, NS)
    assert endpoint is not None
    assert endpoint["status"]["traffic"] == {"blue": 90, produced: 10}
    time.sleep(5)  # the trigger has had every chance to fire again
    assert [r["metadata"]["name"] for r in runs(kube)] == [name]
    pipeline = kube.get(API_VERSION, KIND_PIPELINE, PIPELINE, NS)
    assert pipeline is not None
    trigger = pipeline["status"]["triggers"][0]
    assert trigger["lastRun"] == name and trigger["firedToday"] == 1, trigger
    print(f"\nthe loop: shifted traffic sent {sent - t0:.1f}s, drift episode in status"
          f" +{detected - sent:.1f}s, run created +{created - detected:.1f}s, Succeeded"
          f" +{succeeded - created:.1f}s, canary Ready +{canary - succeeded:.1f}s;"
          f" total {canary - t0:.1f}s. trigger status: {json.dumps(trigger)}")  # fmt: skip
