"""Drift monitoring in real pods: a Model with a baseline profile (20 numeric features, as the
credit-risk model's input X) in the node's S3 store, an endpoint with drift enabled. Shifted
inputs sent through the endpoint's Service reach the drift sidecar inside the pod (the server
samples them over loopback), and the operator, polling the pod on the bridge, shows the
drift in the endpoint's status."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
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
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "examples" / "models" / "credit-risk" / "3"
NS, MODEL, EP = "default", "drifty-v1", "drifty"
WINDOW, FEATURES, ROWS = 200, 20, 10


def _ready(kube: Kube, kind: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(API_VERSION, kind, name, NS) or {}
    conds = (obj.get("status") or {}).get("conditions") or []
    ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
    return obj if ok else None


@pytest.fixture(scope="module")
def drift_endpoint(
    credit_endpoint: str,
    node_cluster: tuple[Cluster, RealNode],
    kube: Kube,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A Model with a baseline of N(0, 1) features and an endpoint sampling every request."""
    rng = np.random.default_rng(7)
    columns = {f"f{i}": rng.normal(0.0, 1.0, 5000) for i in range(FEATURES)}
    profile = build_profile(columns, window_size=WINDOW, model="drifty", bootstrap_windows=100)
    folder = tmp_path_factory.mktemp("baseline")
    write_profile(profile, folder / "credit-risk.profile.json")
    with store_env(node_cluster[1].store_env()):
        store = f"s3://{BUCKET}"
        uri, _ = publish(str(ARTIFACT), store, namespace=NS, name="drifty", version="1")
        baseline, facts = publish(
            str(folder / "credit-risk.profile.json"), store, namespace=NS, name="drifty-baseline",
            version="1",
        )  # fmt: skip
    kube.create({
        "apiVersion": API_VERSION, "kind": KIND_MODEL,
        "metadata": {"name": MODEL, "namespace": NS},
        "spec": {"modelName": "drifty", "version": "1", "framework": "onnx",
                 "artifact": {"uri": uri},
                 "baseline": {"uri": baseline, "digest": facts.digest}},
    })  # fmt: skip
    wait_for(lambda: _ready(kube, KIND_MODEL, MODEL), timeout=60, interval=0.5, what="Model")
    kube.create({
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": EP, "namespace": NS},
        "spec": {"deployments": [{"name": "blue", "model": MODEL, "replicas": 1,
                                  "drift": {"enabled": True, "sampleRate": 1.0,
                                            "windowSize": WINDOW}}],
                 "traffic": {"blue": 100}},
    })  # fmt: skip
    wait_for(lambda: _ready(kube, "OnlineEndpoint", EP), timeout=180, interval=1, what="endpoint")
    service = kube.get("v1", "Service", EP, NS)
    assert service is not None
    yield service["spec"]["clusterIP"]
    # Free the node for the next modules (the pods go with the endpoint).
    kube.delete(API_VERSION, "OnlineEndpoint", EP, NS)
    kube.delete(API_VERSION, KIND_MODEL, MODEL, NS)


def _drift(kube: Kube) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "OnlineEndpoint", EP, NS) or {}
    deps = (obj.get("status") or {}).get("deployments") or []
    return next((d.get("drift") or {} for d in deps if d.get("name") == "blue"), {})


def _send(ip: str, rows: np.ndarray) -> None:
    body = {"inputs": [{"name": "X", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}  # fmt: skip
    req = urllib.request.Request(
        f"http://{ip}/v2/models/drifty/infer",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def test_shifted_inputs_show_drift_in_status(drift_endpoint: str, kube: Kube) -> None:
    rng = np.random.default_rng(11)
    requests = 2 * WINDOW // ROWS  # two windows of rows, every one sampled
    # Control: a window like the baseline is evaluated and shows no drift.
    for _ in range(requests):
        _send(drift_endpoint, rng.normal(0.0, 1.0, (ROWS, FEATURES)).astype(np.float32))
    calm = wait_for(
        lambda: (
            (d := _drift(kube)).get("samples", 0) >= WINDOW and d.get("reason") == "Evaluated" and d
        ),
        timeout=120,
        interval=1,
        what="a full window evaluated",
    )
    print(f"\ndrift status after {requests * ROWS} baseline-like rows: {calm['message']}")
    assert not calm["detected"], calm
    for _ in range(requests):
        _send(drift_endpoint, rng.normal(2.0, 1.0, (ROWS, FEATURES)).astype(np.float32))
    drift = wait_for(
        lambda: (d := _drift(kube)).get("detected") and d.get("samples", 0) >= WINDOW and d,
        timeout=120,
        interval=1,
        what="drift detected in the endpoint status",
    )
    print(f"drift status after {requests * ROWS} shifted rows: {json.dumps(drift)[:600]}")
    assert drift["replicasReporting"] == 1
    assert drift["driftedFeatures"] >= FEATURES // 2
    assert drift["reason"] == "Evaluated"
