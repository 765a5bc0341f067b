"""Pipelines on real pods. The operator (host process, as `mlkube dev up --real-node` runs it,
MLKUBE_ARTIFACT_STORE under the node's bucket) runs each container step as a Job whose pod
runs the imported serving image on the real node: `inputs` fetches the training code and the
labelled data from the node's S3 store and verifies their digests, `main` runs
examples/pipelines/credit-retrain/train.py, `outputs` uploads the model and the metrics.

1. train → evaluate → register in a namespace enforcing Pod Security "restricted": the run
   Succeeds, the step pods' `main` ran (exit 0, kubelet imageID), the outputs in S3 have the
   recorded digests, the Model is Ready with lineage (run, datasets with digests, image with
   digest, parameters, metrics). A second run is all cache: no new Job, every container step
   `cache.hit`, its wall time printed.
2. The sample path of "Done means": `mlkube pipeline run credit-retrain --wait` (the CLI, as a
   user types it) on the sample Pipeline that install_samples created, as `make dev
   --real-node` does: credit-risk v5 with lineage, serving a 10 % canary on `credit`; the rerun
   hits the cache for the train step and reuses v5 (no v6).
The drift → retrain → canary loop is in test_pipeline_drift.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mlkube.contract import API_VERSION, KIND_MODEL, KIND_PIPELINE, KIND_PIPELINE_RUN
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_store import BUCKET
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.node_store import store_env
from support.pipeline_e2e import (
    deployment_ready,
    describe,
    elapsed,
    main_container,
    print_timings,
    ready,
    sample_train_step,
    step_jobs,
    step_pods,
    steps_of,
    train_evaluate_register,
    wait_run,
)
from support.waiting import wait_for

COMMIT = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def three_steps(train: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": [{"name": "C", "type": "number", "default": "1.0"},
                       {"name": "repository", "default": "https://git.example.com/risk.git"},
                       {"name": "commit", "default": COMMIT}],
        "steps": train_evaluate_register(train, "risk"),
    }  # fmt: skip


def start_run(kube: Kube, namespace: str, pipeline: str, name: str) -> float:
    kube.create({"apiVersion": API_VERSION, "kind": KIND_PIPELINE_RUN,
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"pipeline": pipeline}})  # fmt: skip
    return time.monotonic()


def test_three_steps_on_real_pods_then_all_cached(
    credit_endpoint: str, node_cluster: tuple[Cluster, RealNode], kube: Kube, restricted_ns: str
) -> None:
    ns, node = restricted_ns, node_cluster[1]
    train = sample_train_step(kube)
    kube.create({"apiVersion": API_VERSION, "kind": KIND_PIPELINE,
                 "metadata": {"name": "risk-train", "namespace": ns},
                 "spec": three_steps(train)})  # fmt: skip
    started = start_run(kube, ns, "risk-train", "r1")
    run = wait_run(kube, ns, "r1", timeout=300)
    print_timings("run r1 (cold)", run, elapsed(started))
    assert run["status"]["phase"] == "Succeeded", describe(run)
    steps = steps_of(run)
    assert [steps[n]["phase"] for n in ("train", "evaluate", "register")] == ["Succeeded"] * 3
    assert steps["train"]["cache"]["hit"] is False, steps["train"]["cache"]
    assert run["status"]["producedModels"] == ["risk-v1"]

    # The step ran as a real container: its pod passed "restricted" admission, main exited 0
    # in the serving image and the kubelet recorded the image it ran.
    (job,) = step_jobs(kube, ns, "r1")
    assert job["metadata"]["name"] == steps["train"]["job"]
    pods = step_pods(kube, ns, "r1")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    main = main_container(pods[0])
    assert main["state"]["terminated"]["exitCode"] == 0, main
    assert main["imageID"], main
    assert pods[0]["spec"]["automountServiceAccountToken"] is False
    assert steps["train"]["imageDigest"] and "sha256:" in steps["train"]["imageDigest"]

    # Outputs are in S3 under the artifact store, with the digests the run recorded.
    outputs = {o["name"]: o for o in steps["train"]["outputs"]}
    assert outputs["model"]["uri"].startswith(f"s3://{BUCKET}/pipelines/{ns}/pipelineruns/r1/")
    with store_env(node.store_env()):
        assert compute_digest(outputs["model"]["uri"]).digest == outputs["model"]["digest"]
    assert steps["train"]["metrics"]["auc"] > 0.9, steps["train"]["metrics"]

    model = kube.get(API_VERSION, KIND_MODEL, "risk-v1", ns)
    assert ready(model), model
    assert model is not None
    assert model["spec"]["artifact"]["digest"] == outputs["model"]["digest"]
    lineage = model["spec"]["lineage"]
    assert lineage["run"] == {"id": f"{ns}/r1", "system": "mlkube"}
    inputs = {i["name"]: i["uri"] for i in train["inputs"]}
    with store_env(node.store_env()):
        want = [{"name": f"train/{n}", "uri": u, "digest": compute_digest(u).digest}
                for n, u in sorted(inputs.items())]  # fmt: skip
    assert sorted(lineage["datasets"], key=lambda d: d["name"]) == want
    assert lineage["environment"]["image"].startswith(train["image"] + "@sha256:")
    assert lineage["code"] == {"repository": "https://git.example.com/risk.git", "commit": COMMIT}
    assert lineage["parameters"]["C"] == "1.0"
    assert lineage["metrics"]["auc"] == steps["train"]["metrics"]["auc"]

    # The same run again: every container step from the cache, no new Job, the same Model.
    started = start_run(kube, ns, "risk-train", "r2")
    again = wait_run(kube, ns, "r2", timeout=120)
    wall = elapsed(started)
    print_timings("run r2 (cached)", again, wall)
    assert again["status"]["phase"] == "Succeeded", describe(again)
    cache = steps_of(again)["train"]["cache"]
    assert cache["hit"] is True and cache["reason"] == "hit", cache
    assert cache["sourceRun"] == "r1", cache
    assert step_jobs(kube, ns, "r2") == []
    assert again["status"]["producedModels"] == ["risk-v1"]
    assert kube.get(API_VERSION, KIND_MODEL, "risk-v2", ns) is None
    assert wall < 30, f"a fully cached run took {wall:.1f}s"


def mlkube(cluster: Cluster, *args: str, timeout: float = 420) -> tuple[str, float]:
    """The CLI as a user runs it (a process), its output echoed; (stdout, wall seconds)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mlkube", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    wall = time.monotonic() - started
    print(f"\n$ mlkube {' '.join(args)}  ({wall:.1f}s)\n{done.stdout}{done.stderr}")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, wall


@pytest.fixture
def credit_restored(credit_endpoint: str, kube: Kube) -> Iterator[None]:
    """Later modules find `credit` as the samples made it (the canary removed)."""
    before = kube.get(API_VERSION, "OnlineEndpoint", "credit", "default")
    assert before is not None
    yield
    now = kube.get(API_VERSION, "OnlineEndpoint", "credit", "default") or {"spec": {}}
    # A merge patch: the list is replaced, map keys the canary added are dropped with null.
    traffic = {k: None for k in now["spec"].get("traffic") or {}} | before["spec"]["traffic"]
    spec = {"deployments": before["spec"]["deployments"], "traffic": traffic}
    kube.patch(API_VERSION, "OnlineEndpoint", "credit", {"spec": spec}, "default")


def test_credit_retrain_sample_with_the_cli(
    credit_endpoint: str, credit_restored: None, node_cluster: tuple[Cluster, RealNode],
    kube: Kube,
) -> None:  # fmt: skip
    cluster = node_cluster[0]
    _, wall = mlkube(cluster, "pipeline", "run", "credit-retrain", "--wait", "400",
                       "--name", "credit-retrain-e2e-1")  # fmt: skip
    run = kube.get(API_VERSION, KIND_PIPELINE_RUN, "credit-retrain-e2e-1", "default")
    assert run is not None
    print_timings("credit-retrain (cold, CLI)", run, wall)
    assert run["status"]["phase"] == "Succeeded", describe(run)
    assert run["status"]["producedModels"] == ["credit-risk-v5"]
    model = kube.get(API_VERSION, KIND_MODEL, "credit-risk-v5", "default")
    assert ready(model), model
    assert model is not None
    lineage = model["spec"]["lineage"]
    assert lineage["run"] == {"id": "default/credit-retrain-e2e-1", "system": "mlkube"}
    assert {d["name"] for d in lineage["datasets"]} == {"train/code", "train/data"}
    assert all(d["digest"].startswith("sha256:") for d in lineage["datasets"])
    assert "@sha256:" in lineage["environment"]["image"]
    assert lineage["parameters"] == {"C": "1.0"}
    assert lineage["metrics"]["auc"] > 0.91  # it passed the gate against credit-risk-v3's 0.91
    # Deployed as a 10 % canary, traffic applied, its pod Ready.
    wait_for(lambda: deployment_ready(kube, "default", "credit", "credit-risk-v5"),
             timeout=120, interval=0.5, what="canary credit-risk-v5 Ready")  # fmt: skip
    endpoint = kube.get(API_VERSION, "OnlineEndpoint", "credit", "default")
    assert endpoint is not None
    assert endpoint["spec"]["traffic"]["credit-risk-v5"] == 10
    assert endpoint["status"]["traffic"]["credit-risk-v5"] == 10
    assert sum(endpoint["spec"]["traffic"].values()) == 100
    shown, _ = mlkube(cluster, "model", "lineage", "credit-risk:5", "-n", "default")
    assert "PipelineRun default/credit-retrain-e2e-1" in shown

    # Rerun: the container step from the cache, v5 reused, the canary left as it is.
    jobs = len(step_jobs(kube, "default"))
    _, wall = mlkube(cluster, "pipeline", "run", "credit-retrain", "--wait", "120",
                       "--name", "credit-retrain-e2e-2")  # fmt: skip
    again = kube.get(API_VERSION, KIND_PIPELINE_RUN, "credit-retrain-e2e-2", "default")
    assert again is not None
    print_timings("credit-retrain (rerun, CLI)", again, wall)
    assert again["status"]["phase"] == "Succeeded", describe(again)
    assert steps_of(again)["train"]["cache"]["hit"] is True, steps_of(again)["train"]
    assert len(step_jobs(kube, "default")) == jobs
    assert again["status"]["producedModels"] == ["credit-risk-v5"]
    assert kube.get(API_VERSION, KIND_MODEL, "credit-risk-v6", "default") is None
