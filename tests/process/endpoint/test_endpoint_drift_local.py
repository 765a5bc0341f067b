"""The drift path of an endpoint's data plane, as real processes from the builders' manifests:
requests through the router reach the model server, whose hook samples them to the pod's drift
sidecar (baseline fetched and digest-verified by the same init step as in the pod)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests
from sklearn.datasets import make_classification

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.localrun.plan import plan_local
from mlkube.localrun.runner import LocalEndpoint
from mlkube.storage import compute_digest
from mlkube_serving.drift.profile import build_profile, write_profile
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[3]
WINDOW = 200


def summary(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/v1/summary", timeout=5) as resp:
        doc: dict[str, Any] = json.load(resp)
        return doc


def test_shifted_traffic_through_the_router_is_flagged_by_the_sidecar(tmp_path: Path) -> None:
    # The example model's own training distribution (hack/make-sample-models) is the baseline.
    x, _ = make_classification(n_samples=2000, n_features=20, random_state=7)
    baseline_dir = tmp_path / "baseline"
    baseline_dir.mkdir()
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"x{i}" for i in range(20)])
    write_profile(build_profile(frame, window_size=WINDOW), baseline_dir / "profile.json")
    model_uri = (REPO / "examples/models/credit-risk/3").as_uri()
    baseline_uri = baseline_dir.as_uri()
    model = ModelFacts(
        name="credit-risk-v3", model_name="credit-risk", version="3", framework="onnx",
        uri=model_uri, digest=compute_digest(model_uri).digest,
        baseline_uri=baseline_uri, baseline_digest=compute_digest(baseline_uri).digest,
    )  # fmt: skip
    spec = OnlineEndpointSpec.model_validate({
        "deployments": [{"name": "blue", "model": "credit-risk-v3",
                         "drift": {"enabled": True, "sampleRate": 1.0, "windowSize": WINDOW}}],
        "traffic": {"blue": 100},
    })  # fmt: skip
    children = build_endpoint_children(EndpointRef("credit", "ns", "uid-1"), spec,
                                       {model.name: model}, OperatorConfig(), keys=[])  # fmt: skip
    plan = plan_local(children)
    assert plan.servers[0].drift is not None
    rng = np.random.default_rng(3)
    with LocalEndpoint(plan, tmp_path / "run") as local:
        with requests.Session() as session:
            for _ in range(WINDOW + 50):
                row = (rng.normal(size=20) + 2.0).round(4).tolist()  # every feature shifted
                body = {"inputs": [{"name": "X", "shape": [1, 20], "datatype": "FP32",
                                    "data": row}]}  # fmt: skip
                answer = session.post(local.url + "/v2/models/credit-risk/infer", json=body,
                                      timeout=5)  # fmt: skip
                assert answer.status_code == 200
        drift = wait_for(
            lambda: (s := summary(local.drift_url("blue")))["ready"]
            and s["datasetDrift"]["detected"] and s,
            timeout=15, what="the sidecar to flag the shifted window",
        )  # fmt: skip
    assert drift["windowSamples"] == WINDOW
    assert drift["samplesReceived"] >= WINDOW
