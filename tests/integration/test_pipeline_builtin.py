"""Built-in pipeline steps on the real control plane, called as the operator (its chart RBAC),
with the real operator verifying Models and reconciling the endpoint: registerModel creates
a Model the API server admits with its lineage and that becomes Ready by the real verification
path; deploy server-side applies a canary the CRD's CEL rules accept, keeping an earlier
pipeline deployment; `mlkube model lineage` reads it back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.builders.pipeline_outcome import (
    BuiltinOutcome,
    Done,
    Failed,
    ResolvedInput,
    StepOutput,
    StepResult,
    Waiting,
)
from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.controllers.pipeline_builtin import run_builtin
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    make_artifact,
    model_object,
    wait_endpoint_ready,
)
from support.waiting import wait_for

DATA_DIGEST = "sha256:" + "d" * 64
IMAGE_DIGEST = "sha256:" + "f" * 64


@pytest.fixture
def as_operator(cluster: Cluster) -> Kube:
    """The API as the operator sees it: the chart's roles, nothing more."""
    return Kube(str(cluster.kubeconfig_for("operator")))


def run_obj(namespace: str, name: str, uid: str, **parameters: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": {"pipeline": "credit-retrain", "parameters": parameters},
        "status": {"parameters": parameters, "steps": []},
    }  # fmt: skip


def trained(uri: str, digest: str) -> dict[str, StepResult]:
    train = StepResult(
        name="train", phase="Succeeded",
        spec={"name": "train", "image": "registry.example/train:1",
              "inputs": [{"name": "data", "uri": "s3://data/credit/", "digest": DATA_DIGEST}]},
        outputs={"model": StepOutput("model", "artifact", uri, digest)},
        metrics={"auc": 0.91}, image_digest=IMAGE_DIGEST,
        inputs=(ResolvedInput("data", "uri", "s3://data/credit/", DATA_DIGEST),),
    )  # fmt: skip
    return {"train": train}


REGISTER = {
    "name": "register", "type": "registerModel",
    "registerModel": {"artifact": {"step": "train", "output": "model"}, "modelName": "credit-risk",
                      "framework": "sklearn", "metricsFrom": [{"step": "train", "output": "m"}],
                      "tags": {"team": "risk"}},
}  # fmt: skip


def until_finished(call: Any, timeout: float = 30.0) -> BuiltinOutcome:
    def attempt() -> BuiltinOutcome | None:
        outcome = call()
        return outcome if isinstance(outcome, Done | Failed) else None

    result: BuiltinOutcome = wait_for(attempt, timeout=timeout, interval=0.2, what="step finished")
    return result


def test_register_model_creates_a_verified_model_with_lineage(
    kube: Kube, as_operator: Kube, namespace: str, tmp_path: Path,
    running_operator: KopfRunner, capsys: pytest.CaptureFixture[str], cluster: Cluster,
) -> None:  # fmt: skip
    uri = make_artifact(tmp_path / "out", "trained weights")
    digest = compute_digest(uri).digest
    now = datetime.now(UTC)
    run = run_obj(namespace, "r1", "uid-r1", lr="0.1",
                  repository="https://git.example/credit.git", commit="0123abcd")  # fmt: skip
    steps = trained(uri, digest)
    done = until_finished(lambda: run_builtin(as_operator, run, REGISTER, steps, now))
    assert isinstance(done, Done), done
    assert done.produced_models == ("credit-risk-v1",)

    model = kube.get(API_VERSION, "Model", "credit-risk-v1", namespace)
    assert model is not None
    assert model["status"]["phase"] == "Ready"
    assert model["status"]["artifact"]["digest"] == digest  # verified by the operator
    assert "ownerReferences" not in model["metadata"]
    assert model["spec"]["lineage"] == {
        "run": {"id": f"{namespace}/r1", "system": "mlkube"},
        "datasets": [{"name": "train/data", "uri": "s3://data/credit/", "digest": DATA_DIGEST}],
        "code": {"repository": "https://git.example/credit.git", "commit": "0123abcd"},
        "environment": {"image": f"registry.example/train:1@{IMAGE_DIGEST}"},
        "parameters": {"lr": "0.1", "repository": "https://git.example/credit.git",
                       "commit": "0123abcd"},
        "metrics": {"auc": 0.91},
    }  # fmt: skip

    # The same run again adopts its Model; another run with the same artifact reuses it (a
    # cache hit); another run with other bytes gets the next version.
    again = run_builtin(as_operator, run, REGISTER, trained(uri, digest), now)
    assert isinstance(again, Done) and again.produced_models == ("credit-risk-v1",)
    rerun = run_builtin(as_operator, run_obj(namespace, "r2", "uid-r2"), REGISTER,
                        trained(uri, digest), now)  # fmt: skip
    assert isinstance(rerun, Done) and rerun.produced_models == ("credit-risk-v1",)
    assert rerun.cache is not None and (rerun.cache.hit, rerun.cache.source_run) == (True, "r1")
    retrained = make_artifact(tmp_path / "out2", "retrained weights")
    other = run_obj(namespace, "r3", "uid-r3")
    second = until_finished(lambda: run_builtin(as_operator, other, REGISTER,
                            trained(retrained, compute_digest(retrained).digest), now))  # fmt: skip
    assert isinstance(second, Done) and second.produced_models == ("credit-risk-v2",)
    names = sorted(m["metadata"]["name"] for m in kube.list(API_VERSION, "Model", namespace))
    assert names == ["credit-risk-v1", "credit-risk-v2"]

    # `mlkube model lineage` on the real API: the run object does not exist (this test calls
    # the step directly), so the tree falls back to what the Model recorded.
    code = main(["model", "lineage", "credit-risk:1", "-n", namespace,
                 "--kubeconfig", str(cluster.kubeconfig)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].startswith(
        f"Model {namespace}/credit-risk-v1 (credit-risk version 1, Ready, sha256:"
    )
    assert f"PipelineRun {namespace}/r1: gone (not found); from the Model's lineage:" in out
    assert "dataset train/data: s3://data/credit/ (sha256:dddddddddddd)" in out


def test_deploy_adds_a_canary_the_api_server_accepts_and_keeps_earlier_ones(
    kube: Kube, as_operator: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    kube.create(endpoint_object("credit", namespace, blue_green_spec()))
    wait_endpoint_ready(kube, namespace, "credit")
    for version in ("5", "6"):
        uri = make_artifact(tmp_path / f"v{version}", f"weights {version}")
        kube.create(model_object(f"credit-risk-v{version}", namespace, uri, version))
    run = run_obj(namespace, "r1", "uid-r1")
    now = datetime.now(UTC)

    def deploy(model: str, weight: int) -> BuiltinOutcome:
        step = {"name": "canary", "type": "deploy",
                "deploy": {"endpoint": "credit", "model": {"step": "register"},
                           "canaryWeight": weight}}  # fmt: skip
        registered = {"register": StepResult("register", "Succeeded", produced_models=(model,))}
        return until_finished(lambda: run_builtin(as_operator, run, step, registered, now))

    done = deploy("credit-risk-v5", 10)
    assert isinstance(done, Done), done
    endpoint = kube.get(API_VERSION, "OnlineEndpoint", "credit", namespace)
    assert endpoint is not None
    assert endpoint["spec"]["traffic"] == {"blue": 63, "green": 27, "credit-risk-v5": 10}
    assert endpoint["status"]["traffic"] == endpoint["spec"]["traffic"]
    canary = next(d for d in endpoint["spec"]["deployments"] if d["name"] == "credit-risk-v5")
    assert canary == {
        "name": "credit-risk-v5",
        "model": "credit-risk-v5",
        "runtime": "auto",
        "replicas": 2,
    }  # fmt: skip  (blue's scale: it serves the most traffic)
    managers = {m["manager"]: m["operation"] for m in endpoint["metadata"]["managedFields"]}
    assert managers["mlkube-pipeline/credit-risk-v5"] == "Apply"

    done = deploy("credit-risk-v6", 20)
    assert isinstance(done, Done), done
    spec = _spec(kube, namespace)
    assert spec["traffic"] == {"blue": 50, "green": 22, "credit-risk-v5": 8, "credit-risk-v6": 20}
    assert sum(spec["traffic"].values()) == 100
    names = [d["name"] for d in spec["deployments"]]
    assert names == ["blue", "green", "credit-risk-v5", "credit-risk-v6"]  # v5 kept


def _spec(kube: Kube, namespace: str) -> Mapping[str, Any]:
    obj = kube.get(API_VERSION, "OnlineEndpoint", "credit", namespace)
    assert obj is not None
    return dict(obj["spec"])


def test_batch_creates_a_job_the_api_admits_and_reports_its_end(
    kube: Kube, as_operator: Kube, namespace: str, running_operator: KopfRunner
) -> None:
    created = kube.create({"apiVersion": API_VERSION, "kind": "PipelineRun",
                           "metadata": {"name": "r1", "namespace": namespace},
                           "spec": {"pipeline": "credit-retrain"}})  # fmt: skip
    run = run_obj(namespace, "r1", created["metadata"]["uid"])
    step = {"name": "score", "type": "batch",
            "batch": {"endpoint": "nightly", "input": {"uri": "s3://data/day.csv"}}}  # fmt: skip
    now = datetime.now(UTC)
    first = run_builtin(as_operator, run, step, {}, now)
    assert isinstance(first, Waiting), first
    job = kube.get(API_VERSION, "BatchJob", "r1-score", namespace)
    assert job is not None
    assert job["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert job["spec"]["input"] == {"uri": "s3://data/day.csv", "type": "file", "format": "auto"}

    # The real BatchJob controller takes it from there: the test operator has no batch output
    # store, so the job fails at once, and the step reports the job's own reason.
    failed = until_finished(lambda: run_builtin(as_operator, run, step, {}, now))
    assert isinstance(failed, Failed) and failed.reason == "BatchJobFailed"
    assert "BatchJob r1-score failed" in failed.message and "output" in failed.message
    assert len(kube.list(API_VERSION, "BatchJob", namespace)) == 1  # re-entry created no other


def test_model_lineage_walks_a_real_pipeline_run(
    kube: Kube, namespace: str, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """No operator here: the objects are what a finished run leaves behind, written as the
    operator would (status through the subresource), so the real schemas must admit them."""
    run = kube.create({"apiVersion": API_VERSION, "kind": "PipelineRun",
                       "metadata": {"name": "r9", "namespace": namespace},
                       "spec": {"pipeline": "credit-retrain"}})  # fmt: skip
    model_out = {"name": "model", "type": "artifact", "uri": "s3://a/r9/train/a1/outputs/model/",
                 "digest": "sha256:" + "e" * 64}  # fmt: skip
    kube.patch(API_VERSION, "PipelineRun", "r9", {"status": {"phase": "Succeeded", "steps": [
        {"name": "train", "phase": "Succeeded", "attempts": 1, "outputs": [model_out],
         "imageDigest": f"registry.example/train@{IMAGE_DIGEST}",
         "cache": {"hit": True, "sourceRun": "r8", "reason": "hit"}},
        {"name": "register", "phase": "Succeeded"},
    ]}}, namespace, subresource="status")  # fmt: skip
    steps = [
        {"name": "train", "image": "registry.example/train:1",
         "inputs": [{"name": "data", "uri": "s3://data/credit/", "digest": DATA_DIGEST}],
         "outputs": [{"name": "model"}]},
        REGISTER,
    ]  # fmt: skip
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "r9-spec", "namespace": namespace},
                 "data": {"pipeline.json": json.dumps({"steps": steps})}})  # fmt: skip
    lineage = {"run": {"id": f"{namespace}/r9", "system": "mlkube"},
               "datasets": [{"name": "train/data", "uri": "s3://data/credit/",
                             "digest": DATA_DIGEST}]}  # fmt: skip
    model = model_object("credit-risk-v7", namespace, model_out["uri"], "7")
    model["metadata"]["annotations"] = {"mlkube.dev/pipeline-run-uid": run["metadata"]["uid"],
                                        "mlkube.dev/pipeline-step": "register"}  # fmt: skip
    model["spec"]["lineage"] = lineage
    kube.create(model)

    code = main(["model", "lineage", "credit-risk-v7", "-n", namespace,
                 "--kubeconfig", str(cluster.kubeconfig)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[1:] == [
        f"└── PipelineRun {namespace}/r9 (pipeline credit-retrain, Succeeded), step register",
        "    └── step train (Succeeded, cache hit from run r8, image registry.example/train:1,"
        f" imageID registry.example/train@{IMAGE_DIGEST})",
        "        └── input data: s3://data/credit/ (sha256:dddddddddddd)",
    ]
