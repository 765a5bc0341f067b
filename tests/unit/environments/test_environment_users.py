"""Batch scorers and pipeline steps on an environment's image, and the Model's record of the
environments it is served with (status.environments, `mlkube model show`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mlkube.api.batch import BatchOutputSettings
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.model import ModelSpec
from mlkube.builders.batch_job import BatchJobRef, ScoreShape, build_score_job
from mlkube.builders.batch_settings import BatchSettings
from mlkube.builders.build_config import BuildConfig
from mlkube.builders.environment_use import PACKAGED_MODEL_DIR, EnvironmentUse
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pipeline_step import RunRef, StepPod, build_step_job
from mlkube.cli.batch_view import render_details as render_batch_job
from mlkube.cli.endpoint_view import render_details as render_endpoint
from mlkube.cli.model_lineage_view import lineage_tree, render
from mlkube.cli.model_view import render_details
from mlkube.controllers.environment_refs import deployment_environments, waiting_users
from mlkube.controllers.model_environments import merged, only_users
from mlkube.controllers.pipeline_builtin import run_builtin
from support.fake_kube import FakeKube
from support.pipeline_builtin import fake, register_step, run_obj, upstream

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


def test_a_batch_job_replaces_only_its_own_deployment_entry() -> None:
    blue = {**ENTRY, "kind": "BatchEndpoint", "endpoint": "nightly", "deployment": "blue"}
    green = {**blue, "deployment": "green"}
    newer = {**blue, "version": "2"}
    assert merged([blue, green], "BatchEndpoint", "nightly", [newer], {"blue"}) == [newer, green]
    assert merged([blue, green], "BatchEndpoint", "nightly", [blue], {"blue"}) is None


def _obj(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "mlkube.dev/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}"},
            "spec": spec, "status": status}  # fmt: skip


def test_the_users_waiting_for_an_environment_are_found_by_its_name() -> None:
    ready = {"type": "Ready", "status": "False", "reason": "EnvironmentNotReady"}
    blocked = {"conditions": [ready], "observedGeneration": 1}
    kube = FakeKube()
    deps = {"deployments": [{"name": "blue", "model": "m", "environment": "lgbm@latest"}]}
    kube.put(_obj("OnlineEndpoint", "shop", deps, blocked))
    kube.put(_obj("OnlineEndpoint", "other", {"deployments": [{"name": "b", "model": "m"}]},
                  blocked))  # fmt: skip
    kube.put(_obj("BatchEndpoint", "credit", deps, {}))
    kube.put(_obj("BatchJob", "nightly", {"endpoint": "credit"}, {"phase": "Pending"}))
    kube.put(_obj("BatchJob", "done", {"endpoint": "credit"}, {"phase": "Succeeded"}))
    steps = {"steps": [{"name": "train", "environment": "lgbm:1", "command": ["true"]}]}
    kube.put(_obj("Pipeline", "p", steps, {}))
    kube.put(_obj("PipelineRun", "r1", {"pipeline": "p"}, {"phase": "Running"}))
    assert waiting_users(kube, "ml", "lgbm") == {
        "OnlineEndpoint": ["shop"], "BatchJob": ["nightly"], "PipelineRun": ["r1"],
    }  # fmt: skip
    assert waiting_users(kube, "ml", "other") == {
        "OnlineEndpoint": [], "BatchJob": [], "PipelineRun": [],
    }  # fmt: skip


def _env(version: str, image: str) -> dict[str, Any]:
    ready = {"type": "Ready", "status": "True"}
    return _obj("Environment", f"lgbm-{version}", {"environmentName": "lgbm", "version": version},
                {"phase": "Ready", "conditions": [ready], "image": image})  # fmt: skip


def test_latest_is_resolved_once_per_generation() -> None:
    """A new version does not roll an endpoint's pods until its spec changes (note §1)."""
    kube = FakeKube()
    kube.kinds.add(("mlkube.dev/v1alpha1", "Environment"))
    kube.put(_env("1", IMAGE))
    spec = OnlineEndpointSpec.model_validate(
        {"deployments": [{"name": "blue", "model": "m", "environment": "lgbm@latest"}],
         "traffic": {"blue": 100}}
    )  # fmt: skip
    first, blockers = deployment_environments(kube, "ml", spec, CONFIG, {}, 1)
    assert blockers == [] and first["blue"].version == "1"
    assert first["blue"].reference == "lgbm@latest"
    kube.put(_env("2", IMAGE.replace("e" * 64, "f" * 64)))
    status = {"observedGeneration": 1,
              "deployments": [{"name": "blue", "environment": first["blue"].record()}]}  # fmt: skip
    kept, _ = deployment_environments(kube, "ml", spec, CONFIG, status, 1)
    assert kept["blue"].version == "1" and kept["blue"].image == IMAGE
    moved, _ = deployment_environments(kube, "ml", spec, CONFIG, status, 2)
    assert moved["blue"].version == "2"


def test_endpoint_show_lists_each_deployments_environment() -> None:
    obj = {
        "metadata": {"name": "shop", "namespace": "ml"},
        "spec": {"deployments": [{"name": "blue", "model": "m", "environment": "lgbm:1"},
                                 {"name": "green", "model": "m", "environment": "lgbm@latest"}]},
        "status": {"deployments": [{"name": "blue", "environment": USE.record()}]},
    }  # fmt: skip
    text = render_endpoint(obj, datetime.now(UTC))
    assert f"    environment: lgbm:1 {IMAGE}" in text
    assert "    environment: lgbm@latest (not resolved yet)" in text


def test_batch_job_show_names_the_environment() -> None:
    job = {"metadata": {"name": "nightly", "namespace": "ml"},
           "spec": {"endpoint": "credit", "input": {"uri": "s3://in/"}},
           "status": {"phase": "Running", "environment": USE.record()}}  # fmt: skip
    lines = render_batch_job(job, datetime.now(UTC)).splitlines()
    assert lines[3] == f"Environment:   lgbm:1 {IMAGE}"


def test_a_model_registered_from_an_environment_step_names_it_in_its_lineage() -> None:
    """registerModel after a step that ran on an Environment: spec.lineage.environment has
    its name, version and digest-pinned image (what `mlkube model show` prints as Lineage)."""
    kube = fake()
    kube.put({"apiVersion": "mlkube.dev/v1alpha1", "kind": "Model",  # train's Model input
              "metadata": {"name": "base-v3", "namespace": "ml"},
              "spec": {"modelName": "base", "version": "3", "framework": "sklearn",
                       "artifact": {"uri": "s3://models/base-v3/"}},
              "status": {"phase": "Ready", "artifact": {"digest": DIGEST}}})  # fmt: skip
    steps = upstream(auc=0.9)
    steps["train"] = replace(steps["train"], environment=USE.record())
    run_builtin(kube, run_obj(), register_step(), steps, datetime(2026, 1, 1, tzinfo=UTC))
    created = next(v for k, v in kube.objects.items() if k[1] == "Model" and k[3] != "base-v3")
    lineage = created["spec"]["lineage"]
    assert lineage["environment"] == {"name": "lgbm", "version": "1", "image": IMAGE}
    ModelSpec.model_validate(created["spec"])  # what the CRD schema admits
    assert f"image: {IMAGE}" in render_details(created)
