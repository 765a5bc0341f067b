"""train → evaluate → register → deploy through the real PipelineRun controller: the train step
is a real process (dev pod executor, real Job controller), the built-in steps run in the
operator, the Model is verified for real and the endpoint takes the canary. Then `mlkube model
lineage` walks the Model back to the run, its step and its input with digests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.handlers.config import operator_config
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.operator import patched_env, run_operator
from support.podexec import POD_ANNOTATIONS_ENV, PodExecutor
from support.waiting import wait_for

IMAGE = "python@sha256:" + "1" * 64
TRAIN = (
    "import os,json,pathlib;raw=pathlib.Path(os.environ['MLKUBE_INPUT_RAW']);"
    "out=pathlib.Path(os.environ['MLKUBE_OUTPUT_MODEL']);"
    "(out/'model.pkl').write_bytes(b'weights:'+(raw/'a.csv').read_bytes());"
    "pathlib.Path(os.environ['MLKUBE_OUTPUT_METRICS']).write_text(json.dumps({'auc':0.91}))"
)
M = {"step": "train", "output": "metrics"}


@pytest.fixture
def store(tmp_path: Path, pod_executor: PodExecutor) -> Iterator[Path]:
    """The operator annotates step pods for the executor and writes to a file:// store."""
    root = tmp_path / "store"
    root.mkdir()
    operator_config.cache_clear()
    env = {"MLKUBE_BATCH_POD_ANNOTATIONS": POD_ANNOTATIONS_ENV,
           "MLKUBE_ARTIFACT_STORE": root.as_uri()}  # fmt: skip
    with patched_env(env):
        yield root
    operator_config.cache_clear()


def steps(raw: Path) -> list[dict[str, Any]]:
    return [
        {"name": "train", "image": IMAGE, "command": ["python", "-c", TRAIN],
         "inputs": [{"name": "raw", "uri": raw.as_uri()}],
         "outputs": [{"name": "model"}, {"name": "metrics", "type": "metrics"}]},
        {"name": "evaluate", "type": "evaluate", "evaluate": {
            "metrics": [{"name": "auc", "from": M, "min": 0.8}],
            "compareWith": {"endpoint": "credit", "metric": "auc", "from": M,
                            "minImprovement": 0.01}}},
        {"name": "register", "type": "registerModel", "dependsOn": ["evaluate"],
         "registerModel": {"artifact": {"step": "train", "output": "model"},
                           "modelName": "credit-risk", "framework": "sklearn",
                           "metricsFrom": [M], "tags": {"team": "risk"}}},
        {"name": "deploy", "type": "deploy",
         "deploy": {"endpoint": "credit", "model": {"step": "register"}, "canaryWeight": 10}},
    ]  # fmt: skip


def test_train_evaluate_register_deploy(
    kube: Kube, namespace: str, tmp_path: Path, store: Path, pod_executor: PodExecutor,
    cluster: Cluster, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text("x,y\n1,0\n")
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
        # The serving Model's recorded auc is the baseline the candidate must beat by 0.01.
        kube.patch(API_VERSION, "Model", "credit-risk-v3",
                   {"spec": {"lineage": {"metrics": {"auc": 0.85}}}}, namespace)  # fmt: skip
        kube.create(endpoint_object("credit", namespace, blue_green_spec()))
        wait_endpoint_ready(kube, namespace, "credit")
        kube.create({"apiVersion": API_VERSION, "kind": "Pipeline",
                     "metadata": {"name": "retrain", "namespace": namespace},
                     "spec": {"steps": steps(raw)}})  # fmt: skip
        kube.create({"apiVersion": API_VERSION, "kind": "PipelineRun",
                     "metadata": {"name": "r1", "namespace": namespace},
                     "spec": {"pipeline": "retrain"}})  # fmt: skip

        def finished() -> dict[str, Any] | None:
            obj = kube.get(API_VERSION, "PipelineRun", "r1", namespace) or {}
            phase = (obj.get("status") or {}).get("phase")
            return obj if phase in ("Succeeded", "Failed", "Cancelled") else None

        run = wait_for(finished, timeout=180, interval=0.5, what="run r1 finished")
        by_step = {s["name"]: s for s in run["status"]["steps"]}
        detail = {n: (s.get("phase"), s.get("message")) for n, s in by_step.items()}
        assert run["status"]["phase"] == "Succeeded", detail
        with capsys.disabled():  # the timings, for the record (-s)
            status = run["status"]
            print(f"\nrun r1 {status.get('startTime')} -> {status.get('completionTime')}")
            for name, st in by_step.items():
                print(f"  {name}: {st.get('startTime')} -> {st.get('completionTime')}")
        assert (
            "auc 0.91 >= serving credit-risk-v3 (credit/blue) 0.85 + 0.01"
            in (by_step["evaluate"]["message"])
        )
        assert run["status"].get("producedModels") == ["credit-risk-v5"]

        model = kube.get(API_VERSION, "Model", "credit-risk-v5", namespace)
        assert model is not None and model["status"]["phase"] == "Ready"
        trained = next(o for o in by_step["train"]["outputs"] if o["name"] == "model")
        assert model["spec"]["artifact"] == {"uri": trained["uri"], "digest": trained["digest"]}
        assert model["status"]["artifact"]["digest"] == trained["digest"]
        lineage = model["spec"]["lineage"]
        assert lineage["run"] == {"id": f"{namespace}/r1", "system": "mlkube"}
        assert lineage["datasets"] == [
            {
                "name": "train/raw",
                "uri": raw.as_uri(),
                "digest": compute_digest(raw.as_uri()).digest,
            }
        ]
        assert lineage["environment"] == {"image": IMAGE}
        assert lineage["metrics"] == {"auc": 0.91}

        endpoint = kube.get(API_VERSION, "OnlineEndpoint", "credit", namespace)
        assert endpoint is not None
        assert endpoint["spec"]["traffic"] == {"blue": 63, "green": 27, "credit-risk-v5": 10}
        assert endpoint["status"]["traffic"] == endpoint["spec"]["traffic"]

    code = main(["model", "lineage", "credit-risk:5", "-n", namespace,
                 "--kubeconfig", str(cluster.kubeconfig)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"PipelineRun {namespace}/r1 (pipeline retrain, Succeeded" in out
    assert "step train (Succeeded" in out
    assert f"input raw: {raw.as_uri()} (sha256:" in out
