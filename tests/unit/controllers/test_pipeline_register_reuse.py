"""registerModel on a rerun: a Model that already registers exactly this artifact is reused (a
cache hit, no new version); an explicit version that exists is reused only when it is the same
thing; a Failed or deleting Model is never reused; the drift baseline becomes spec.baseline.
Last, through the PipelineRun controller: a second run is all cache hits and creates nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlkube.builders.pipeline_outcome import (
    Done,
    Failed,
    ResolvedInput,
    StepOutput,
    StepResult,
    Waiting,
)
from mlkube.contract import API_VERSION
from mlkube.controllers.pipeline_builtin import run_builtin
from support import pipelines
from support.fake_kube import FakeKube
from support.pipeline_builtin import (
    DIGEST_MODEL,
    NS,
    fake,
    register_step,
    run_obj,
    set_phase,
    train_step,
    upstream,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
OTHER = "sha256:" + "0" * 64
PROFILE = "sha256:" + "c" * 64


def model(
    version: str,
    digest: str = DIGEST_MODEL,
    phase: str = "Ready",
    run: str | None = "r0",
    **spec: Any,
) -> dict[str, Any]:
    name = f"credit-risk-v{version}"
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"modelName": "credit-risk", "version": version, "framework": "sklearn",
                 "artifact": {"uri": f"s3://a/{run}/model/", "digest": digest}, **spec},
        "status": {"phase": phase, "artifact": {"digest": digest}, "message": "checked"},
    }  # fmt: skip
    if run is not None:
        obj["spec"]["lineage"] = {"run": {"id": f"{NS}/{run}", "system": "mlkube"}}
    return obj


def cluster(*models: dict[str, Any]) -> FakeKube:
    kube = fake()
    base = model("3", OTHER, run=None) | {"metadata": {"name": "base-v3", "namespace": NS}}
    kube.put(base | {"spec": {**base["spec"], "modelName": "base"}})  # the Model input of train
    for obj in models:
        kube.put(obj)
    return kube


def creates(kube: FakeKube) -> list[str]:
    return [k[3] for k in kube.written("create")]


def test_a_ready_model_with_this_artifact_is_reused_as_a_cache_hit() -> None:
    kube = cluster(model("4", OTHER, run="r-old"), model("5", run="r1"), model("6", OTHER))
    done = run_builtin(kube, run_obj("r2"), register_step(), upstream(), NOW)
    assert isinstance(done, Done), done
    assert done.message.startswith(f"credit-risk-v5 already registers {DIGEST_MODEL}")
    assert "(registered by run r1)" in done.message
    assert done.produced_models == ("credit-risk-v5",)
    assert {o.name: o.value for o in done.outputs} == {"model": "credit-risk-v5", "version": "5"}
    assert done.cache is not None
    assert (done.cache.hit, done.cache.reason, done.cache.source_run) == (
        True,
        "model credit-risk-v5 has this artifact",
        "r1",
    )
    assert creates(kube) == []


def test_a_hand_registered_model_is_reused_too_and_the_highest_version_wins() -> None:
    kube = cluster(model("2", run=None), model("3", run=None))
    done = run_builtin(kube, run_obj("r2"), register_step(), upstream(), NOW)
    assert isinstance(done, Done) and done.produced_models == ("credit-risk-v3",)
    assert "registered outside a pipeline" in done.message
    assert done.cache is not None and done.cache.source_run is None


def test_failed_deleting_unverified_or_different_models_are_not_reused() -> None:
    deleting = model("3")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    kube = cluster(
        model("1", phase="Failed"),
        model("2", phase="Pending"),
        deleting,
        model("4", framework="onnx"),
        model("5", OTHER),
    )
    outcome = run_builtin(kube, run_obj("r2"), register_step(), upstream(), NOW)
    assert isinstance(outcome, Waiting), outcome
    assert creates(kube) == ["credit-risk-v6"]


def test_no_digest_on_the_artifact_means_no_reuse() -> None:
    kube = cluster(model("1"))
    steps = upstream()
    bare = StepOutput("model", "artifact", "s3://a/train/model/")
    steps["train"] = StepResult(**{**train_step().__dict__, "outputs": {"model": bare}})
    outcome = run_builtin(kube, run_obj("r2"), register_step(), steps, NOW)
    assert isinstance(outcome, Waiting)
    assert creates(kube) == ["credit-risk-v2"]


def test_an_explicit_version_that_exists() -> None:
    same = run_builtin(cluster(model("7")), run_obj("r2"), register_step("7"), upstream(), NOW)
    assert isinstance(same, Done) and same.cache is not None and same.cache.hit
    assert same.produced_models == ("credit-risk-v7",)

    kube = cluster(model("7", OTHER))
    other = run_builtin(kube, run_obj("r2"), register_step("7"), upstream(), NOW)
    assert isinstance(other, Failed) and other.reason == "VersionExists"
    assert f"its artifact is {OTHER}, this run's is {DIGEST_MODEL}" in other.message
    assert "Versions are immutable" in other.message and creates(kube) == []

    failed = run_builtin(
        cluster(model("7", phase="Failed")), run_obj("r2"), register_step("7"), upstream(), NOW
    )
    assert isinstance(failed, Failed) and "failed verification: checked" in failed.message

    pending = cluster(model("7", phase="Pending"))
    waiting = run_builtin(pending, run_obj("r2"), register_step("7"), upstream(), NOW)
    assert isinstance(waiting, Waiting) and "waiting for its verification" in waiting.message
    set_phase(pending, "credit-risk-v7", "Ready")
    assert isinstance(
        run_builtin(pending, run_obj("r2"), register_step("7"), upstream(), NOW), Done
    )

    gone = model("7")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    later = run_builtin(cluster(gone), run_obj("r2"), register_step("7"), upstream(), NOW)
    assert isinstance(later, Waiting) and "being deleted" in later.message


def with_profile(digest: str | None = PROFILE) -> dict[str, StepResult]:
    steps = upstream()
    train = steps["train"]
    profile = StepOutput("profile", "artifact", "s3://a/train/profile/", digest)
    steps["train"] = StepResult(
        **{**train.__dict__, "outputs": {**train.outputs, "profile": profile}}
    )
    return steps


BASELINE = {"baseline": {"step": "train", "output": "profile"}}


def test_the_baseline_output_becomes_spec_baseline() -> None:
    kube = cluster()
    run_builtin(kube, run_obj("r1"), register_step(**BASELINE), with_profile(), NOW)
    spec = kube.stored(API_VERSION, "Model", "credit-risk-v1", NS)["spec"]
    assert spec["baseline"] == {"uri": "s3://a/train/profile/", "digest": PROFILE}

    # Reuse needs the same baseline: a Model without it (or another one) is not this.
    kube = cluster(model("1"), model("2", baseline={"uri": "s3://x/", "digest": OTHER}))
    run_builtin(kube, run_obj("r2"), register_step(**BASELINE), with_profile(), NOW)
    assert creates(kube) == ["credit-risk-v3"]
    kube = cluster(model("1", baseline={"uri": "s3://a/train/profile/", "digest": PROFILE}))
    done = run_builtin(kube, run_obj("r2"), register_step(**BASELINE), with_profile(), NOW)
    assert isinstance(done, Done) and done.produced_models == ("credit-risk-v1",)


def test_a_separate_profile_step_is_in_the_lineage() -> None:
    steps = upstream()
    steps["profile"] = StepResult(
        name="profile",
        phase="Succeeded",
        spec={
            "name": "profile",
            "image": "registry.example/profile:1",
            "inputs": [{"name": "sample", "uri": "s3://data/sample/", "digest": OTHER}],
            "outputs": [{"name": "profile"}],
        },
        outputs={"profile": StepOutput("profile", "artifact", "s3://a/profile/", PROFILE)},
        inputs=(ResolvedInput("sample", "uri", "s3://data/sample/", OTHER),),
    )
    kube = cluster()
    step = register_step(baseline={"step": "profile", "output": "profile"})
    run_builtin(kube, run_obj("r1"), step, steps, NOW)
    spec = kube.stored(API_VERSION, "Model", "credit-risk-v1", NS)["spec"]
    assert spec["baseline"] == {"uri": "s3://a/profile/", "digest": PROFILE}
    assert {"name": "profile/sample", "uri": "s3://data/sample/", "digest": OTHER} in spec[
        "lineage"
    ]["datasets"]


def test_a_baseline_without_a_digest_or_output_fails_before_creating() -> None:
    kube = cluster()
    bare = run_builtin(kube, run_obj(), register_step(**BASELINE), with_profile(None), NOW)
    assert isinstance(bare, Failed) and "recorded without a digest" in bare.message
    missing = run_builtin(kube, run_obj(), register_step(**BASELINE), upstream(), NOW)
    assert isinstance(missing, Failed) and "no artifact output 'profile'" in missing.message
    assert creates(kube) == []


def _register_pipeline() -> list[dict[str, Any]]:
    return [
        pipelines.step("train"),
        {"name": "register", "type": "registerModel",
         "registerModel": {"artifact": {"step": "train", "output": "out"},
                           "modelName": "credit-risk", "framework": "sklearn"}},
    ]  # fmt: skip


def _verify(kube: FakeKube) -> None:
    """The Model controller's part: every Pending Model becomes Ready at its declared digest."""
    for key, obj in list(kube.objects.items()):
        if key[1] == "Model" and (obj.get("status") or {}).get("phase") != "Ready":
            ready = {"phase": "Ready", "artifact": {"digest": obj["spec"]["artifact"]["digest"]}}
            kube.mutate(key, lambda o, s=ready: o.update(status=s))


def test_a_rerun_through_the_controller_is_all_cache_hits(tmp_path: Path) -> None:
    kube, cfg = pipelines.cluster(_register_pipeline()), pipelines.config(tmp_path)
    pipelines.add_run(kube, "r1")
    pipelines.reconcile(kube, cfg, "r1")
    pipelines.succeed(kube, "r1-train-a1")
    pipelines.reconcile(kube, cfg, "r1")
    _verify(kube)
    pipelines.reconcile(kube, cfg, "r1")
    assert pipelines.status(kube, "r1")["phase"] == "Succeeded"
    assert pipelines.status(kube, "r1")["producedModels"] == ["credit-risk-v1"]

    pipelines.add_run(kube, "r2")
    pipelines.reconcile(kube, cfg, "r2")  # one pass: train from the cache, register reused
    st = pipelines.status(kube, "r2")
    assert st["phase"] == "Succeeded", st
    assert st["producedModels"] == ["credit-risk-v1"]
    register = pipelines.step_status(kube, "r2", "register")
    assert register["cache"] == {
        "hit": True,
        "reason": "model credit-risk-v1 has this artifact",
        "sourceRun": "r1",
    }
    assert register["message"].startswith("credit-risk-v1 already registers sha256:")
    assert pipelines.step_status(kube, "r2", "train")["cache"]["hit"] is True
    assert "2/2 steps succeeded (2 from the cache)" in st["message"]
    assert pipelines.jobs(kube) == ["r1-train-a1"]
    assert [k[3] for k in kube.objects if k[1] == "Model"] == ["credit-risk-v1"]
