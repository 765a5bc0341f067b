"""Pure pieces of `mlkube batch`: manifests, the job `invoke` builds, the shard of a mini-batch,
where a job's files are, and the text of `jobs list|show`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlkube.builders.batch_plan import shard
from mlkube.cli.batch_jobs import choose_index, newest_pod, resume_body, resumed_work_list
from mlkube.cli.batch_view import (
    build_job,
    dead_letter_uri,
    deployment_of,
    index_of_mini_batch,
    mini_batch_size,
    predictions_uri,
    read_manifests,
    render_details,
    render_table,
)
from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_read_manifests_accepts_both_kinds_and_fills_the_namespace() -> None:
    text = f"""
apiVersion: {API_VERSION}
kind: BatchEndpoint
metadata: {{name: credit}}
spec: {{deployments: [{{name: main, model: credit-v1}}], defaultDeployment: main}}
---
apiVersion: {API_VERSION}
kind: BatchJob
metadata: {{generateName: credit-}}
spec: {{endpoint: credit, input: {{uri: "s3://b/in/"}}}}
"""
    docs = read_manifests(text, "team-a")
    assert [d["kind"] for d in docs] == ["BatchEndpoint", "BatchJob"]
    assert {d["metadata"]["namespace"] for d in docs} == {"team-a"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Model\napiVersion: mlkube.dev/v1alpha1", "expected kind BatchEndpoint or BatchJob"),
        (f"kind: BatchJob\napiVersion: {API_VERSION}\nspec: {{}}", "needs metadata.name"),
        (f"kind: BatchJob\napiVersion: {API_VERSION}\nmetadata: {{name: j}}\n"
         "spec: {endpoint: e, input: {uri: 's3://b/x'}, overrides: {miniBatchSize: 0}}",
         "BatchJob j: spec.overrides.miniBatchSize"),
        ("a: [", "not valid YAML"),
        ("", "holds no objects"),
    ],
)  # fmt: skip
def test_read_manifests_refuses_with_one_line(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        read_manifests(text, "default")


def test_mini_batch_size_takes_files_or_rows() -> None:
    assert mini_batch_size("10") == 10
    assert mini_batch_size("10000rows") == "10000rows"
    for bad in ("0", "10 rows", "ten", "-1", "010"):
        with pytest.raises(CliError, match="--mini-batch-size"):
            mini_batch_size(bad)


def test_build_job_generates_a_name_and_sets_only_what_was_given() -> None:
    body = build_job("credit", "ns", input_uri="s3://b/in/")
    assert body["metadata"] == {"namespace": "ns", "generateName": "credit-"}
    assert body["spec"] == {
        "endpoint": "credit",
        "input": {"uri": "s3://b/in/", "type": "folder", "format": "auto"},
    }
    named = build_job("credit", "ns", input_uri="s3://b/x.csv", input_type="file",
                      input_format="csv", name="run-1", deployment="blue",
                      output_uri="s3://b/out/", size="500rows", instance_count=3)  # fmt: skip
    assert named["metadata"]["name"] == "run-1"
    assert named["spec"]["deployment"] == "blue"
    assert named["spec"]["output"] == {"uri": "s3://b/out/"}
    assert named["spec"]["overrides"] == {"miniBatchSize": "500rows", "instanceCount": 3}


def test_build_job_refuses_rows_over_opaque_files() -> None:
    with pytest.raises(CliError, match="tabular input format"):
        build_job("e", "ns", input_uri="s3://b/in/", input_format="files", size="100rows")


def test_deployment_of_uses_named_default_or_only_one() -> None:
    two = {"spec": {"deployments": [{"name": "a"}, {"name": "b"}], "defaultDeployment": "b"}}
    assert deployment_of(two, None)["name"] == "b"
    assert deployment_of(two, "a")["name"] == "a"
    assert deployment_of({"spec": {"deployments": [{"name": "x"}]}}, None)["name"] == "x"
    with pytest.raises(CliError, match=r"no deployment 'c' in this endpoint \(have: a, b\)"):
        deployment_of(two, "c")
    with pytest.raises(CliError, match="no defaultDeployment: pass --deployment"):
        deployment_of({"spec": {"deployments": [{"name": "a"}, {"name": "b"}]}}, None)


@pytest.mark.parametrize(("total", "indexes"), [(10, 4), (7, 7), (1000, 3), (5, 1), (13, 8)])
def test_index_of_mini_batch_matches_the_planner_shards(total: int, indexes: int) -> None:
    plan = {"miniBatches": total, "indexes": indexes}
    for index in range(indexes):
        for mb in shard(index, total, indexes):
            assert index_of_mini_batch(mb, plan, None) == index


def test_index_of_mini_batch_in_a_resumed_job_uses_work_list_positions() -> None:
    work = [3, 4, 9, 10, 11, 20]  # the remaining ids; shards are positions in this list
    plan = {"miniBatches": 30, "indexes": 2}
    assert [index_of_mini_batch(i, plan, work) for i in work] == [0, 0, 0, 1, 1, 1]
    with pytest.raises(CliError, match="mini-batch 5 is not in this resumed job's work list"):
        index_of_mini_batch(5, plan, work)
    with pytest.raises(CliError, match="mini-batch 30 is not in the plan"):
        index_of_mini_batch(30, plan, None)
    with pytest.raises(CliError, match="no indexes yet"):
        index_of_mini_batch(0, {}, None)


def test_choose_index_from_flags_or_the_last_error() -> None:
    job = {"status": {"plan": {"miniBatches": 10, "indexes": 4},
                      "lastErrors": [{"miniBatch": 1}, {"miniBatch": 9}]}}  # fmt: skip
    assert choose_index(job, None, 2, None) == (2, "index 2")
    assert choose_index(job, 5, None, None) == (1, "mini-batch 5")
    assert choose_index(job, None, None, None) == (3, "mini-batch 9")  # the newest error
    with pytest.raises(CliError, match=r"outside 0\.\.3"):
        choose_index(job, None, 4, None)
    quiet = {"status": {"plan": {"miniBatches": 10, "indexes": 4}}}
    with pytest.raises(CliError, match="pass --mini-batch ID or --index I"):
        choose_index(quiet, None, None, None)


def pod(name: str, index: str, created: str, job: str = "j-score-1") -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "labels": {"batch.kubernetes.io/job-completion-index": index,
                                    "batch.kubernetes.io/job-name": job}}}  # fmt: skip


def test_newest_pod_is_the_last_attempt_of_the_index() -> None:
    pods = [pod("a", "1", "2026-01-01T00:00:00Z"), pod("b", "1", "2026-01-01T00:05:00Z"),
            pod("c", "2", "2026-01-01T00:09:00Z"),
            pod("old", "1", "2026-01-01T00:09:00Z", job="j-score-0")]  # fmt: skip
    found, attempts = newest_pod(pods, 1, "j-score-1")
    assert found is not None and found["metadata"]["name"] == "b" and attempts == 2
    assert newest_pod(pods, 3, "j-score-1") == (None, 0)


def job_obj(**status: object) -> dict:
    return {
        "metadata": {"name": "credit-x1", "namespace": "ns",
                     "creationTimestamp": "2026-11-30T11:00:00Z"},
        "spec": {"endpoint": "credit", "input": {"uri": "s3://b/in/"},
                 "overrides": {"miniBatchSize": "100rows"}},
        "status": status,
    }  # fmt: skip


def test_files_of_a_job() -> None:
    job = job_obj(outputUri="s3://out/ns/credit-x1/")
    assert predictions_uri(job, None) == "s3://out/ns/credit-x1/predictions.csv"
    dep = {"output": {"action": "appendRow", "fileName": "scores.jsonl", "format": "jsonl"}}
    assert predictions_uri(job, dep) == "s3://out/ns/credit-x1/scores.jsonl"
    assert predictions_uri(job, {"output": {"action": "summaryOnly"}}) is None
    assert dead_letter_uri(job) == "s3://out/ns/credit-x1/_mlkube/deadletter/"
    assert predictions_uri(job_obj(), None) is None  # no output chosen yet


def test_render_details_shows_counts_errors_and_where_things_are() -> None:
    job = job_obj(
        phase="Failed", message="ErrorThresholdExceeded: 120 failed items (errorThreshold 100)",
        deployment="main", model="credit-v3", outputUri="s3://out/j", progress=100,
        plan={"digest": "sha256:ab", "miniBatches": 30, "items": 3000, "itemsEstimated": True,
              "indexes": 4},
        miniBatches={"total": 30, "succeeded": 28, "failed": 2, "retried": 6},
        items={"total": 3000, "succeeded": 2880, "failed": 120},
        lastErrors=[{"miniBatch": 12, "attempt": 4, "message": "ValueError: could not convert"}],
    )  # fmt: skip
    text = render_details(job, NOW)
    assert "Phase:         Failed: ErrorThresholdExceeded: 120 failed items" in text
    assert "Endpoint:      credit (deployment main, model credit-v3)" in text
    assert "Mini-batches:  30 total, 28 succeeded, 2 failed, 6 retried" in text
    assert "Items:         ~3,000 total, 2,880 succeeded, 120 failed" in text
    assert "Plan:          sha256:ab (30 mini-batches, ~3,000 items, 4 indexes)" in text
    assert "Predictions:   s3://out/j/predictions.csv (not written: the merge runs only" in text
    assert "Dead letters:  s3://out/j/_mlkube/deadletter/" in text
    assert "  mini-batch 12 (attempt 4): ValueError: could not convert" in text
    assert "Age:           60m" in text


def test_render_table_and_namespaces_column() -> None:
    jobs = [job_obj(phase="Running", progress=40, items={"succeeded": 1200, "failed": 3})]
    lines = render_table(jobs, NOW, namespaces=False).splitlines()
    assert lines[0].split() == ["NAME", "ENDPOINT", "DEPLOYMENT", "PHASE", "PROGRESS", "ITEMS",
                                "OK", "FAILED", "AGE"]  # fmt: skip
    assert lines[1].split() == ["credit-x1", "credit", "-", "Running", "40%", "1,200", "3", "60m"]
    assert render_table(jobs, NOW, namespaces=True).splitlines()[1].startswith("ns ")
    assert render_table([], NOW, namespaces=False) == "No batch jobs found."


def test_resume_body_keeps_endpoint_input_and_settings() -> None:
    source = job_obj(phase="Failed", deployment="main")
    body = resume_body(source, None)
    assert body["metadata"] == {"namespace": "ns", "generateName": "credit-x1-resume-"}
    assert body["spec"] == {
        "endpoint": "credit", "input": {"uri": "s3://b/in/"}, "resumeFrom": "credit-x1",
        "deployment": "main", "overrides": {"miniBatchSize": "100rows"},
    }  # fmt: skip
    assert resume_body(source, "again")["metadata"]["name"] == "again"


def test_a_resumed_job_finds_its_work_list_in_the_output(tmp_path: Path) -> None:
    from mlkube.builders.batch_resume import Work, serialize_work

    work = tmp_path / "_mlkube" / "work"
    work.mkdir(parents=True)
    (work / "credit-x1.json").write_bytes(serialize_work(Work("sha256:p", (3, 4, 9), 7)))
    args = argparse.Namespace(kubeconfig=str(tmp_path / "none"), context=None)
    job = job_obj(outputUri=tmp_path.as_uri())
    assert resumed_work_list(args, job) is None  # not resumed: shards of the whole plan
    job["spec"]["resumeFrom"] = "credit-x0"
    assert resumed_work_list(args, job) == [3, 4, 9]
    (work / "credit-x1.json").write_text("{")
    with pytest.raises(CliError, match="unreadable work list of the resumed job"):
        resumed_work_list(args, job)
    (work / "credit-x1.json").unlink()
    with pytest.raises(CliError, match=r"_mlkube/work/credit-x1\.json does not exist"):
        resumed_work_list(args, job)
