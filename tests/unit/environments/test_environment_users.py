"""Batch scorers and pipeline steps on an environment's image, and the Model's record of the
environments it is served with (status.environments, `mlkube model show`)."""

from __future__ import annotations

from typing import Any

from mlkube.api.batch import BatchOutputSettings
from mlkube.builders.batch_job import BatchJobRef, ScoreShape, build_score_job
from mlkube.builders.batch_settings import BatchSettings
from mlkube.builders.build_config import BuildConfig
from mlkube.builders.environment_use import PACKAGED_MODEL_DIR, EnvironmentUse
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pipeline_step import RunRef, StepPod, build_step_job
from mlkube.cli.model_lineage_view import lineage_tree, render
from mlkube.cli.model_view import render_details
from mlkube.controllers.model_environments import merged, only_users

IMAGE = "127.0.0.1:5000/mlkube/environments@sha256:" + "e" * 64
DIGEST = "sha256:" + "a" * 64
MODEL = ModelFacts(
    name="credit-v1", model_name="credit", version="1", framework="sklearn",
    uri="pvc://models/credit/1", digest=DIGEST,
)  # fmt: skip
CONFIG = OperatorConfig(
    serving_image="reg/serving:1", build=BuildConfig(image_pull_secret="envpull")
)
SETTINGS = BatchSettings(
    deployment="blue", model="credit-v1", mini_batch_size="10", instance_count=1, concurrency=1,
    error_threshold=-1, max_retries=1, timeout_seconds=60,
    output=BatchOutputSettings(),
    entrypoint=None, resources={}, env=(), logging_level="info",
)  # fmt: skip
USE = EnvironmentUse(reference="lgbm:1", name="lgbm", version="1", image=IMAGE)


def _score_pod(use: EnvironmentUse | None) -> dict[str, Any]:
    job = build_score_job(
        BatchJobRef("nightly", "ml", "uid"), output="s3://out/", settings=SETTINGS,
        shape=ScoreShape(plan_digest="sha256:" + "b" * 64, indexes=2), model=MODEL,
        config=CONFIG, environment=use,
    )  # fmt: skip
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def test_batch_scorer_runs_on_the_environment_image() -> None:
    pod = _score_pod(USE)
    scorer = pod["containers"][0]
    assert scorer["image"] == IMAGE
    assert scorer["command"][:4] == ["python", "-m", "mlkube_serving", "batch"]
    assert pod["imagePullSecrets"] == [{"name": "envpull"}]
    assert pod["initContainers"][0]["image"] == "reg/serving:1"  # mlkube's initializer
    plain = _score_pod(None)
    assert plain["containers"][0]["image"] == "reg/serving:1" and "imagePullSecrets" not in plain


def test_batch_scorer_of_a_packaged_model_reads_the_baked_in_copy() -> None:
    packaged = EnvironmentUse(
        reference="credit-v1-pkg:1", name="credit-v1-pkg", version="1", image=IMAGE,
        packaged_model="credit-v1", packaged_digest=DIGEST,
    )  # fmt: skip
    pod = _score_pod(packaged)
    scorer = pod["containers"][0]
    assert "initContainers" not in pod
    args = scorer["command"]
    assert args[args.index("--model") + 1] == PACKAGED_MODEL_DIR
    # Neither the model emptyDir nor the model's claim is mounted: nothing is downloaded.
    assert {v["name"] for v in pod["volumes"]} <= {"tmp", "pvc-out"}
    assert all(v["name"] != "model" for v in pod["volumes"])


def test_step_on_an_environment_gets_the_pull_secret() -> None:
    pod = StepPod(step="train", attempt=1, image=IMAGE, prefix="s3://a/ml/pipelineruns/r/train/a1",
                  command=("python", "train.py"), pull_secret="envpull")  # fmt: skip
    job = build_step_job(RunRef("r", "ml", "uid"), pod, CONFIG)
    spec = job["spec"]["template"]["spec"]
    main = next(c for c in spec["containers"] if c["name"] == "main")
    assert main["image"] == IMAGE
    assert spec["imagePullSecrets"] == [{"name": "envpull"}]
    bare = build_step_job(RunRef("r", "ml", "uid"), StepPod(step="t", attempt=1, image="x:1",
                                                             prefix="s3://a/p", command=("true",)),
                      CONFIG)  # fmt: skip
    assert "imagePullSecrets" not in bare["spec"]["template"]["spec"]


ENTRY = {**USE.record(), "kind": "OnlineEndpoint", "endpoint": "shop", "deployment": "blue"}


def test_model_environments_are_replaced_per_endpoint_and_pruned_with_the_endpoint() -> None:
    other = {**ENTRY, "endpoint": "other"}
    assert merged([other, ENTRY], "OnlineEndpoint", "shop", [ENTRY]) is None
    assert merged([other, ENTRY], "OnlineEndpoint", "shop", []) == [other]
    green = {**ENTRY, "deployment": "green"}
    assert merged([ENTRY], "OnlineEndpoint", "shop", [green]) == [green]
    users = [{"kind": "OnlineEndpoint", "name": "shop"}]
    assert only_users([other, ENTRY], users) == [ENTRY]
    assert only_users([ENTRY], users) is None


def test_model_show_and_lineage_list_the_environment_digest() -> None:
    model = {
        "metadata": {"name": "credit-v1", "namespace": "ml"},
        "spec": {"modelName": "credit", "version": "1", "framework": "sklearn"},
        "status": {"phase": "Ready", "environments": [ENTRY]},
    }
    text = render_details(model)
    assert (
        "Environments:\n  environment lgbm:1 sha256:" + "e" * 64 + " (OnlineEndpoint shop/blue)"
        in text
    )

    class Lookup:
        def model(self, namespace: str, name: str) -> dict[str, Any] | None:
            return model if name == "credit-v1" else None

        def run(self, namespace: str, name: str) -> None:
            return None

        def snapshot(self, namespace: str, run: str) -> None:
            return None

    tree = render(lineage_tree(Lookup(), "ml", "credit-v1"))
    assert f"served with environment lgbm:1 ({IMAGE}, OnlineEndpoint shop/blue)" in tree
