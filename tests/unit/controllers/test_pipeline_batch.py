"""batch against the in-memory API (BatchJob `<run>-<step>` owned by the run, adopted on
re-entry, never someone else's), and the hook's dispatch and timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlkube.api.batch_job import BatchJobSpec
from mlkube.builders.pipeline_outcome import Done, Failed, StepOutput, StepResult, Waiting
from mlkube.contract import API_VERSION
from mlkube.controllers.pipeline_builtin import run_builtin
from support.fake_kube import FakeKube
from support.pipeline_builtin import NS, RUN_UID, fake, run_obj

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
KEY = (API_VERSION, "BatchJob", NS, "r1-score")


def step(**source: Any) -> dict[str, Any]:
    return {"name": "score", "type": "batch",
            "batch": {"endpoint": "nightly", "deployment": "main", "input": source}}  # fmt: skip


def features() -> dict[str, StepResult]:
    out = StepOutput("features", "artifact", "s3://a/prep/features/", "sha256:" + "1" * 64)
    return {"prep": StepResult("prep", "Succeeded", outputs={"features": out})}


def set_status(kube: FakeKube, **status: Any) -> None:
    kube.mutate(KEY, lambda obj: obj.update(status=status))


def test_creates_the_job_owned_by_the_run_and_reports_its_output() -> None:
    kube = fake()
    source = {"fromStep": {"step": "prep", "output": "features"}, "format": "csv"}
    first = run_builtin(kube, run_obj(), step(**source), features(), NOW)
    assert isinstance(first, Waiting) and "BatchJob r1-score is Pending" in first.message
    job = kube.stored(API_VERSION, "BatchJob", "r1-score", NS)
    BatchJobSpec.model_validate(job["spec"])
    assert job["spec"] == {
        "endpoint": "nightly", "deployment": "main",
        "input": {"uri": "s3://a/prep/features/", "type": "folder", "format": "csv"},
    }  # fmt: skip
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("PipelineRun", RUN_UID, True)

    set_status(kube, phase="Running", progress=40)
    running = run_builtin(kube, run_obj(), step(**source), features(), NOW)
    assert isinstance(running, Waiting) and "Running (40%)" in running.message
    set_status(kube, phase="Succeeded", outputUri="s3://out/r1-score/",
               items={"succeeded": 9, "failed": 1})  # fmt: skip
    done = run_builtin(kube, run_obj(), step(**source), features(), NOW)
    assert isinstance(done, Done)
    assert done.outputs == (StepOutput("output", "artifact", uri="s3://out/r1-score/"),)
    assert done.metrics == {"itemsSucceeded": 9.0, "itemsFailed": 1.0}
    assert kube.written("create") == [KEY]


def test_uri_input_file_or_folder_and_failure() -> None:
    kube = fake()
    run_builtin(kube, run_obj(), step(uri="s3://data/day.csv"), {}, NOW)
    assert kube.stored(*KEY[:2], KEY[3], NS)["spec"]["input"] == {
        "uri": "s3://data/day.csv", "type": "file",
    }  # fmt: skip
    set_status(kube, phase="Failed", message="error threshold exceeded")
    failed = run_builtin(kube, run_obj(), step(uri="s3://data/day.csv"), {}, NOW)
    assert isinstance(failed, Failed) and failed.reason == "BatchJobFailed"
    assert "error threshold exceeded" in failed.message
    other = fake()
    run_builtin(other, run_obj(), step(uri="s3://data/days/"), {}, NOW)
    assert other.stored(*KEY[:2], KEY[3], NS)["spec"]["input"]["type"] == "folder"


def test_a_job_of_that_name_owned_by_someone_else_is_not_adopted() -> None:
    kube = fake()
    kube.put({"apiVersion": API_VERSION, "kind": "BatchJob",
              "metadata": {"name": "r1-score", "namespace": NS},
              "spec": {"endpoint": "x", "input": {"uri": "s3://x/"}}})  # fmt: skip
    outcome = run_builtin(kube, run_obj(), step(uri="s3://d/"), {}, NOW)
    assert isinstance(outcome, Failed) and outcome.reason == "NameConflict"


def test_missing_upstream_output_fails() -> None:
    outcome = run_builtin(
        fake(), run_obj(), step(fromStep={"step": "prep", "output": "x"}), {}, NOW
    )
    assert isinstance(outcome, Failed) and outcome.reason == "InputMissing"


def test_hook_refuses_unknown_types_and_enforces_the_step_timeout() -> None:
    unknown = run_builtin(fake(), run_obj(), {"name": "x", "type": "container"}, {}, NOW)
    assert isinstance(unknown, Failed) and unknown.reason == "UnknownStepType"
    run = run_obj()
    started = (NOW - timedelta(minutes=11)).isoformat().replace("+00:00", "Z")
    run["status"]["steps"] = [{"name": "score", "startTime": started}]
    late = run_builtin(fake(), run, {**step(uri="s3://d/"), "timeout": "10m"}, {}, NOW)
    assert isinstance(late, Failed) and late.reason == "Timeout"
    assert "within its timeout 10m" in late.message
    in_time = run_builtin(fake(), run, {**step(uri="s3://d/"), "timeout": "1h"}, {}, NOW)
    assert isinstance(in_time, Waiting)


def test_the_step_shapes_used_here_are_what_the_api_admits() -> None:
    from mlkube.api.pipeline_step import Step
    from support.pipeline_builtin import register_step

    shapes = [
        register_step(entrypoint={"path": "score.py"}),
        step(fromStep={"step": "prep", "output": "features"}, format="csv"),
        step(uri="s3://data/day.csv"),
        {"name": "gate", "type": "evaluate", "evaluate": {
            "metrics": [{"name": "auc", "from": {"step": "train", "output": "m"}, "min": 0.8}],
            "compareWith": {"endpoint": "credit", "deployment": "blue", "metric": "auc",
                            "from": {"step": "train", "output": "m"}, "higherIsBetter": False,
                            "minImprovement": 0.01}}},
        {"name": "canary", "type": "deploy", "deploy": {
            "endpoint": "credit", "model": {"step": "register"}, "deployment": "shadow",
            "mirrorPercent": 25, "runtime": "sklearn"}},
    ]  # fmt: skip
    for shape in shapes:
        assert Step.model_validate(shape).name == shape["name"]
