"""The Pipeline and PipelineRun CRDs against the real API server: samples apply with their
defaults, and every CEL rule rejects with its message (no operator: what any client meets).

The pydantic side of the same rules, and the checks CEL cannot do (cycles, templates, output
types), are in tests/unit/api/test_pipeline_kind.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from mlkube.api import pipeline as pl
from mlkube.api import pipeline_run as pr
from mlkube.api import pipeline_step as ps
from mlkube.api.batch import MSG_CRON
from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.crd_checks import rejected, sample

pytestmark = pytest.mark.integration
Obj = dict[str, Any]


def _steps(obj: Obj) -> dict[str, Obj]:
    return {s["name"]: s for s in obj["spec"]["steps"]}


def test_pipeline_and_run_samples_apply_with_defaults(kube: Kube, namespace: str) -> None:
    kube.create(sample("pipeline.yaml", namespace))
    kube.create(sample("pipelinerun.yaml", namespace))
    got = kube.get(API_VERSION, "Pipeline", "credit-retrain", namespace)
    assert got is not None
    spec = got["spec"]
    assert (spec["failFast"], spec["parallelism"]) == (True, 4)
    train, evaluate = _steps(got)["train"], _steps(got)["evaluate"]
    assert train["type"] == "container" and train["retry"]["limit"] == 2
    assert train["retry"]["backoff"] == {"duration": "10s", "factor": 2, "maxDuration": "5m"}
    assert train["cache"] == {"enabled": True, "version": "", "maxAge": "30d"}
    assert evaluate["evaluate"]["compareWith"]["higherIsBetter"] is True
    assert spec["schedules"][0]["concurrencyPolicy"] == "Forbid"
    assert spec["triggers"][0]["onDrift"] == {
        "endpoint": "credit",
        "cooldown": "1h",
        "maxRunsPerDay": 3,
    }
    # kstatus: a fresh object reads as not yet observed.
    assert got["status"] == {"observedGeneration": 0}
    run = kube.get(API_VERSION, "PipelineRun", "credit-retrain-manual-1", namespace)
    assert run is not None
    assert (run["spec"]["cachePolicy"], run["spec"]["cancel"]) == ("Default", False)
    assert run["status"] == {"observedGeneration": 0}


def _step(**fields: Any) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        _steps(obj)["train"].update(fields)

    return apply


PIPELINE_RULES: list[tuple[Callable[[Obj], None], str]] = [
    (lambda o: _steps(o)["train"].pop("image"), ps.MSG_CONTAINER_IMAGE),
    (lambda o: _steps(o)["evaluate"].update(image="busybox"), ps.MSG_CONTAINER_ONLY),
    (lambda o: _steps(o)["evaluate"].update(outputs=[{"name": "x"}]), ps.MSG_BUILTIN_OUTPUTS),
    (lambda o: _steps(o)["evaluate"].update(type="batch"), ps.msg_block("evaluate")),
    (
        lambda o: _steps(o)["train"].update(batch={"endpoint": "b", "input": {"uri": "s3://b/"}}),
        ps.msg_block("batch"),
    ),
    (lambda o: _steps(o)["register"].pop("registerModel"), ps.msg_block("registerModel")),
    (lambda o: _steps(o)["deploy"].pop("deploy"), ps.msg_block("deploy")),
    (_step(inputs=[{"name": "a"}]), ps.MSG_INPUT_ONE_SOURCE),
    (_step(inputs=[{"name": "a", "uri": "s3://b/a", "model": "m"}]), ps.MSG_INPUT_ONE_SOURCE),
    (_step(inputs=[{"name": "a", "model": "m", "digest": "sha256:" + "a" * 64}]),
     ps.MSG_DIGEST_NEEDS_URI),
    (lambda o: _steps(o)["deploy"]["deploy"].update(mirrorPercent=5), ps.MSG_DEPLOY_ONE),
    (lambda o: _steps(o)["deploy"]["deploy"].pop("canaryWeight"), ps.MSG_DEPLOY_ONE),
    (lambda o: _steps(o)["evaluate"]["evaluate"]["metrics"][0].pop("min"), ps.MSG_METRIC_BOUND),
    (lambda o: _steps(o)["evaluate"]["evaluate"]["metrics"][0].update(max=0.1),
     ps.MSG_METRIC_RANGE),
    (lambda o: o["spec"]["triggers"][0].update(onNewData={"uri": "s3://b/new/"}),
     pl.MSG_TRIGGER_ONE),
    (lambda o: o["spec"]["triggers"][0].pop("onDrift"), pl.MSG_TRIGGER_ONE),
    (_step(dependsOn=["ghost"]), pl.MSG_DEPENDS_EXIST),
    (_step(dependsOn=["train"]), pl.MSG_SELF_DEPENDENCY),
    (_step(inputs=[{"name": "a", "fromStep": {"step": "ghost", "output": "o"}}]),
     pl.MSG_FROM_STEP_EXIST),
    (_step(inputs=[{"name": "a", "fromParameter": "lr"}]), pl.MSG_FROM_PARAMETER_EXIST),
    (lambda o: _steps(o)["deploy"]["deploy"]["model"].update(step="evaluate"), pl.MSG_DEPLOY_MODEL),
    (lambda o: _steps(o)["register"]["registerModel"]["artifact"].update(step="ghost"),
     pl.MSG_BLOCK_STEP_EXIST),
    (lambda o: _steps(o)["register"]["registerModel"]["metricsFrom"][0].update(step="ghost"),
     pl.MSG_BLOCK_STEP_EXIST),
    (lambda o: _steps(o)["register"]["registerModel"].update(
        baseline={"step": "ghost", "output": "profile"}), pl.MSG_BLOCK_STEP_EXIST),
    (lambda o: _steps(o)["evaluate"]["evaluate"]["metrics"][0]["from"].update(step="ghost"),
     pl.MSG_BLOCK_STEP_EXIST),
    (lambda o: _steps(o)["evaluate"]["evaluate"]["compareWith"]["from"].update(step="ghost"),
     pl.MSG_BLOCK_STEP_EXIST),
    (lambda o: o["spec"]["steps"].append({"name": "score", "type": "batch", "batch": {
        "endpoint": "credit-batch", "input": {"fromStep": {"step": "ghost", "output": "o"}}}}),
     pl.MSG_BLOCK_STEP_EXIST),
    (lambda o: o["spec"]["steps"].append({"name": "score", "type": "batch", "batch": {
        "endpoint": "credit-batch",
        "input": {"uri": "s3://b/x", "fromStep": {"step": "train", "output": "model"}}}}),
     ps.MSG_BATCH_INPUT_ONE),
    (lambda o: o["spec"]["parameters"][0].update(default="high"), pl.MSG_DEFAULT_TYPE),
    (lambda o: o["spec"]["parameters"].append({"name": "n", "type": "integer", "default": "1.5"}),
     pl.MSG_DEFAULT_TYPE),
    (lambda o: o["spec"]["parameters"].append({"name": "b", "type": "boolean", "default": "yes"}),
     pl.MSG_DEFAULT_TYPE),
    (lambda o: o["spec"]["schedules"][0].update(cron="60 * * * *"), MSG_CRON),
    (_step(timeout="1.5h"), "spec.steps[0].timeout"),
    (_step(name="Train"), "spec.steps[0].name"),
    (lambda o: o["spec"]["steps"].append(copy.deepcopy(o["spec"]["steps"][0])), "Duplicate value"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "message"), PIPELINE_RULES, ids=[f"{i}:{m[:40]}" for i, (_, m) in
                                                 enumerate(PIPELINE_RULES)]
)  # fmt: skip
def test_pipeline_rules(
    kube: Kube, namespace: str, mutate: Callable[[Obj], None], message: str
) -> None:
    obj = sample("pipeline.yaml", namespace)
    mutate(obj)
    assert message in rejected(kube.create, obj)


def _patch_run(kube: Kube, namespace: str, spec: Obj) -> Obj:
    return kube.patch(
        API_VERSION, "PipelineRun", "credit-retrain-manual-1", {"spec": spec}, namespace
    )


def test_pipeline_run_spec_is_a_record(kube: Kube, namespace: str) -> None:
    kube.create(sample("pipelinerun.yaml", namespace))
    for change in (
        {"pipeline": "other"},
        {"parameters": {"C": "2"}},
        {"parameters": None},
        {"cachePolicy": "ForceRerun"},
        {"resumeFrom": "r0"},
        {"trigger": {"type": "drift"}},
    ):
        assert pr.MSG_SPEC_IMMUTABLE in rejected(_patch_run, kube, namespace, change), change
    assert _patch_run(kube, namespace, {"cancel": True})["spec"]["cancel"] is True
    assert pr.MSG_CANCEL_FINAL in rejected(_patch_run, kube, namespace, {"cancel": False})


def test_pipeline_run_create_rules(kube: Kube, namespace: str) -> None:
    itself = sample("pipelinerun.yaml", namespace)
    itself["spec"]["resumeFrom"] = itself["metadata"]["name"]
    assert pr.MSG_RESUME_SELF in rejected(kube.create, itself)
    rerun = sample("pipelinerun.yaml", namespace)
    rerun["spec"]["rerunSteps"] = ["train"]
    assert pr.MSG_RERUN_NEEDS_RESUME in rejected(kube.create, rerun)
    rerun["spec"]["resumeFrom"] = "credit-retrain-old"
    assert kube.create(rerun)["spec"]["rerunSteps"] == ["train"]


def test_pipeline_run_status_is_a_subresource(kube: Kube, namespace: str) -> None:
    kube.create(sample("pipelinerun.yaml", namespace))
    status = {"phase": "Running", "progress": "1/4", "observedGeneration": 1,
              "steps": [{"name": "train", "phase": "Running", "attempts": 1}]}  # fmt: skip
    patched = kube.patch(
        API_VERSION,
        "PipelineRun",
        "credit-retrain-manual-1",
        {"status": status},
        namespace,
        subresource="status",
    )
    assert patched["status"]["progress"] == "1/4"
    assert patched["status"]["steps"][0]["phase"] == "Running"
    bad = {"status": {"progress": "one of four"}}
    assert "status.progress" in rejected(
        kube.patch,
        API_VERSION,
        "PipelineRun",
        "credit-retrain-manual-1",
        bad,
        namespace,
        subresource="status",
    )
