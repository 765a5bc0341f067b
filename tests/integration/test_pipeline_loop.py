"""train → evaluate → register → deploy through the real PipelineRun controller: the train step
is a real process (dev pod executor, real Job controller), the built-in steps run in the
operator, the Model (with its drift baseline) is verified for real and the endpoint takes the
canary. A second run of the same pipeline does no new work: train from the cache, register
reuses the Model, deploy finds it serving, the endpoint is not written. Then `mlkube model
lineage` walks the Model back to the run, its step and its input with digests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.operator import run_operator
from support.podexec import PodExecutor, executor_store
from support.waiting import wait_for

IMAGE = "python@sha256:" + "1" * 64
TRAIN = (
    "import os,json,pathlib;raw=pathlib.Path(os.environ['MLKUBE_INPUT_RAW']);"
    "out=pathlib.Path(os.environ['MLKUBE_OUTPUT_MODEL']);"
    "(out/'model.pkl').write_bytes(b'weights:'+(raw/'a.csv').read_bytes());"
    "pathlib.Path(os.environ['MLKUBE_OUTPUT_METRICS']).write_text(json.dumps({'auc':0.91}));"
    # The drift baseline profile (a stand-in: registration records it, nothing parses it here).
    "(pathlib.Path(os.environ['MLKUBE_OUTPUT_PROFILE'])/'profile.json').write_text('{}')"
)
M = {"step": "train", "output": "metrics"}


@pytest.fixture
def store(tmp_path: Path, pod_executor: PodExecutor) -> Iterator[Path]:
    """The operator annotates step pods for the executor and writes to a file:// store."""
    with executor_store(tmp_path / "store") as root:
        yield root


def steps(raw: Path) -> list[dict[str, Any]]:
    return [
        {"name": "train", "image": IMAGE, "command": ["python", "-c", TRAIN],
         "inputs": [{"name": "raw", "uri": raw.as_uri()}],
         "outputs": [{"name": "model"}, {"name": "metrics", "type": "metrics"},
                     {"name": "profile"}]},
        {"name": "evaluate", "type": "evaluate", "evaluate": {
            "metrics": [{"name": "auc", "from": M, "min": 0.8}],
            "compareWith": {"endpoint": "credit", "metric": "auc", "from": M,
                            "minImprovement": 0.01}}},
        {"name": "register", "type": "registerModel", "dependsOn": ["evaluate"],
         "registerModel": {"artifact": {"step": "train", "output": "model"},
                           "modelName": "credit-risk", "framework": "sklearn",
                           "metricsFrom": [M], "tags": {"team": "risk"},
                           "baseline": {"step": "train", "output": "profile"}}},
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

        run = wait_for(finished(kube, namespace, "r1"), timeout=180, interval=0.5,
                       what="run r1 finished")  # fmt: skip
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
        profile = next(o for o in by_step["train"]["outputs"] if o["name"] == "profile")
        assert model["spec"]["baseline"] == {"uri": profile["uri"], "digest": profile["digest"]}
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
        rerun(kube, namespace, capsys)

    code = main(["model", "lineage", "credit-risk:5", "-n", namespace,
                 "--kubeconfig", str(cluster.kubeconfig)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"PipelineRun {namespace}/r1 (pipeline retrain, Succeeded" in out
    assert "step train (Succeeded" in out
    assert f"input raw: {raw.as_uri()} (sha256:" in out


def finished(kube: Kube, namespace: str, name: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "PipelineRun", name, namespace) or {}
        phase = (obj.get("status") or {}).get("phase")
        return obj if phase in ("Succeeded", "Failed", "Cancelled") else None

    return check


def _endpoint_version(kube: Kube, namespace: str) -> str:
    endpoint = kube.get(API_VERSION, "OnlineEndpoint", "credit", namespace)
    assert endpoint is not None
    return str(endpoint["metadata"]["resourceVersion"])


def rerun(kube: Kube, namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Run the same pipeline again: every step a cache hit or a reuse, nothing written."""
    # The endpoint settles first (its controller's last status writes), so an unchanged
    # resourceVersion below means nobody wrote it during r2.
    seen: list[str] = []

    def settled() -> bool:
        seen.append(_endpoint_version(kube, namespace))
        return len(seen) >= 4 and len(set(seen[-4:])) == 1

    wait_for(settled, timeout=60, interval=0.5, what="endpoint credit settled")
    version = seen[-1]
    models = sorted(m["metadata"]["name"] for m in kube.list(API_VERSION, "Model", namespace))
    jobs = sorted(j["metadata"]["name"] for j in kube.list("batch/v1", "Job", namespace))
    began = time.monotonic()
    kube.create({"apiVersion": API_VERSION, "kind": "PipelineRun",
                 "metadata": {"name": "r2", "namespace": namespace},
                 "spec": {"pipeline": "retrain"}})  # fmt: skip
    run = wait_for(finished(kube, namespace, "r2"), timeout=60, interval=0.1,
                   what="run r2 finished")  # fmt: skip
    wall = time.monotonic() - began
    by_step = {s["name"]: s for s in run["status"]["steps"]}
    detail = {n: (s.get("phase"), s.get("message"), s.get("cache")) for n, s in by_step.items()}
    with capsys.disabled():
        print(f"\nrerun r2: {wall:.2f} s wall (create -> Succeeded observed)")
        for name, st in by_step.items():
            print(f"  {name}: {st.get('phase')} cache={st.get('cache')} {st.get('message')}")
    assert run["status"]["phase"] == "Succeeded", detail
    assert {n: s["phase"] for n, s in by_step.items()} == dict.fromkeys(by_step, "Succeeded")
    assert by_step["train"]["cache"]["hit"] is True, detail
    assert by_step["train"]["cache"]["sourceRun"] == "r1"
    assert by_step["register"]["cache"] == {
        "hit": True, "reason": "model credit-risk-v5 has this artifact", "sourceRun": "r1",
    }  # fmt: skip
    assert by_step["register"]["message"].startswith("credit-risk-v5 already registers sha256:")
    assert "(registered by run r1)" in by_step["register"]["message"]
    assert "auc 0.91 >= serving credit-risk-v3 (credit/blue)" in by_step["evaluate"]["message"]
    assert "Model credit-risk-v5 serves on credit/credit-risk-v5" in by_step["deploy"]["message"]
    assert run["status"].get("producedModels") == ["credit-risk-v5"]
    assert "4/4 steps succeeded (2 from the cache)" in run["status"]["message"]
    # Nothing new: no Model, no Job, no write to the endpoint.
    assert sorted(m["metadata"]["name"] for m in kube.list(API_VERSION, "Model", namespace)) == (
        models
    )
    assert sorted(j["metadata"]["name"] for j in kube.list("batch/v1", "Job", namespace)) == jobs
    assert _endpoint_version(kube, namespace) == version
    assert wall < 20, f"a fully cached rerun took {wall:.1f} s"  # measured ~1 s; loaded CI slack
