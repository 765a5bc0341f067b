"""`mlkube batch` against the real API server: the objects it creates, the CEL messages it shows,
and what it prints while a BatchJob runs. The test plays the operator's part by writing the
job's status subresource (the API the BatchJob controller uses), and the score Job is a real
Indexed Job whose pods the controller-manager creates, so `jobs logs` finds a real pod."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.waiting import wait_for

DIGEST = "sha256:" + "ab" * 32
ENDPOINT = {
    "apiVersion": API_VERSION, "kind": "BatchEndpoint", "metadata": {"name": "credit"},
    "spec": {"defaultDeployment": "rows", "deployments": [
        {"name": "rows", "model": "credit-v1", "miniBatchSize": "1000rows"},
        {"name": "files", "model": "credit-v1",
         "output": {"fileName": "scores.jsonl", "format": "jsonl"}},
    ]},
}  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def get(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    found = kube.get(API_VERSION, "BatchJob", name, ns)
    assert found is not None, name
    return found


def set_status(kube: Kube, ns: str, name: str, **status: Any) -> None:
    """What the BatchJob controller writes (the status subresource)."""
    kube.patch(API_VERSION, "BatchJob", name, {"status": status}, ns, subresource="status")


def running(done: int, failed: int = 0, phase: str = "Running", **extra: Any) -> dict[str, Any]:
    return {
        "phase": phase, "deployment": "rows", "model": "credit-v1",
        "progress": (done + failed) * 10,
        "plan": {"digest": DIGEST, "uri": "s3://out/_mlkube/plan.json", "miniBatches": 10,
                 "items": 10000, "itemsEstimated": True, "indexes": 4},
        "miniBatches": {"total": 10, "succeeded": done, "failed": failed, "retried": 0},
        "items": {"total": 10000, "succeeded": done * 1000, "failed": failed * 1000},
        "outputUri": "s3://out/ns/job/", **extra,
    }  # fmt: skip


@pytest.fixture
def ns_args(cluster: Cluster, namespace: str) -> list[str]:
    return ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]


def test_create_and_invoke(
    kube: Kube, namespace: str, tmp_path: Path, ns_args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    manifest = tmp_path / "batch.yaml"
    job = {"apiVersion": API_VERSION, "kind": "BatchJob", "metadata": {"name": "first"},
           "spec": {"endpoint": "credit", "input": {"uri": "s3://data/in/"}}}  # fmt: skip
    manifest.write_text(yaml.safe_dump_all([ENDPOINT, job]))
    code, out, err = run(capsys, "batch", "create", "-f", str(manifest), *ns_args)
    assert code == 0, err
    assert out.splitlines() == [
        f"batchendpoint.mlkube.dev/credit created in namespace {namespace}",
        f"batchjob.mlkube.dev/first created in namespace {namespace}",
    ]
    code, _, err = run(capsys, "batch", "create", "-f", str(manifest), *ns_args)
    assert code == 1 and err.count("\n") == 1
    assert f"cannot create BatchEndpoint {namespace}/credit: it already exists" in err

    # A rule only the API server knows (it needs metadata.name): its CEL message, as is.
    selfish = {**job, "metadata": {"name": "loop"}, "spec": {**job["spec"], "resumeFrom": "loop"}}
    manifest.write_text(yaml.safe_dump(selfish))
    code, _, err = run(capsys, "batch", "create", "-f", str(manifest), *ns_args)
    assert code == 1 and "spec.resumeFrom must name another BatchJob" in err

    code, out, err = run(capsys, "batch", "invoke", "credit", "--input", "s3://data/x.csv",
                         "--input-type", "file", "--format", "csv", "--deployment", "files",
                         "--output", "s3://out/a/", "--mini-batch-size", "500rows",
                         "--instance-count", "3", "--name", "job-a", *ns_args)  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"batchjob.mlkube.dev/job-a created in namespace {namespace}\n")
    assert get(kube, namespace, "job-a")["spec"] == {
        "endpoint": "credit", "deployment": "files",
        "input": {"uri": "s3://data/x.csv", "type": "file", "format": "csv"},
        "output": {"uri": "s3://out/a/"},
        "overrides": {"miniBatchSize": "500rows", "instanceCount": 3},
        "suspend": False, "cancel": False,
    }  # fmt: skip

    code, out, err = run(capsys, "batch", "invoke", "credit", "--input", "s3://d/", *ns_args)
    assert code == 0, err
    generated = out.split()[0].removeprefix("batchjob.mlkube.dev/")
    assert generated.startswith("credit-") and get(kube, namespace, generated)

    code, _, err = run(capsys, "batch", "invoke", "nope", "--input", "s3://d/", *ns_args)
    assert code == 1 and f"BatchEndpoint {namespace}/nope not found" in err
    code, _, err = run(capsys, "batch", "invoke", "credit", "--input", "s3://d/",
                       "--deployment", "blue", *ns_args)  # fmt: skip
    assert code == 1 and "no deployment 'blue' in this endpoint (have: files, rows)" in err


def _invoke_waiting(cluster: Cluster, namespace: str, name: str, *extra: str) -> Any:
    # A separate process: output is not a TTY, so progress comes as plain lines.
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from mlkube.cli.main import main; sys.exit(main())",
         "batch", "invoke", "credit", "--input", "s3://d/", "--name", name, *extra,
         "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_invoke_wait_follows_status_to_the_end(
    cluster: Cluster, kube: Kube, namespace: str,
) -> None:  # fmt: skip
    kube.create({**ENDPOINT, "metadata": {"name": "credit", "namespace": namespace}})
    ok = _invoke_waiting(cluster, namespace, "ok", "--wait", "60")
    bad = _invoke_waiting(cluster, namespace, "bad", "--wait")
    slow = _invoke_waiting(cluster, namespace, "slow", "--wait", "3")
    for name in ("ok", "bad", "slow"):
        wait_for(lambda n=name: kube.get(API_VERSION, "BatchJob", n, namespace), timeout=30,
                 what=f"BatchJob {name} created")  # fmt: skip
    set_status(kube, namespace, "ok", phase="Planning")
    set_status(kube, namespace, "bad", **running(2))
    time.sleep(2.5)  # the CLI polls every second
    set_status(kube, namespace, "ok", **running(4))
    time.sleep(2.5)  # the CLI polls every second
    set_status(kube, namespace, "ok", **running(10, phase="Succeeded", progress=100,
               items={"total": 9990, "succeeded": 9990, "failed": 0}))  # fmt: skip
    errors = [{"miniBatch": 7, "attempt": 4, "message": "ValueError: could not convert 'x'"}]
    reason = "ErrorThresholdExceeded: 2000 failed items (errorThreshold 100)"
    set_status(kube, namespace, "bad",
               **running(8, 2, phase="Failed", lastErrors=errors, message=reason))  # fmt: skip

    out, err = ok.communicate(timeout=60)
    assert ok.returncode == 0, err
    progress = err.splitlines()
    assert progress[0] == "ok Pending   waiting for the operator"
    assert "ok Planning  listing the input" in progress
    assert any("mini-batches 4/10  items 4,000 ok, 0 failed of ~10,000" in p for p in progress)
    assert progress[-1].startswith("ok Succeeded [") and "of 9,990" in progress[-1]
    assert "BatchJob ok Succeeded" in out
    assert "  output:      s3://out/ns/job" in out
    assert "  predictions: s3://out/ns/job/predictions.csv" in out

    out, err = bad.communicate(timeout=60)
    assert bad.returncode == 1
    assert "BatchJob bad Failed: ErrorThresholdExceeded: 2000 failed items" in err
    assert "  mini-batch 7 (attempt 4): ValueError: could not convert 'x'" in err
    assert "  failed items are listed under s3://out/ns/job/_mlkube/deadletter/" in err

    _, err = slow.communicate(timeout=60)
    assert slow.returncode == 124
    assert "BatchJob slow is still Pending after 3s; it keeps running" in err


def test_jobs_list_show_cancel_resume_delete(
    kube: Kube, namespace: str, ns_args: list[str], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    kube.create({**ENDPOINT, "metadata": {"name": "credit", "namespace": namespace}})
    for name, endpoint in (("j1", "credit"), ("j2", "credit"), ("other", "elsewhere")):
        kube.create({"apiVersion": API_VERSION, "kind": "BatchJob",
                     "metadata": {"name": name, "namespace": namespace},
                     "spec": {"endpoint": endpoint, "input": {"uri": "s3://d/"},
                              "overrides": {"miniBatchSize": 7}}})  # fmt: skip
    errors = [{"miniBatch": 3, "item": "in/bad.csv", "attempt": 1, "message": "bad row"}]
    set_status(kube, namespace, "j1", **running(9, 1, phase="Failed", lastErrors=errors))
    set_status(kube, namespace, "j2", **running(3))

    code, out, err = run(capsys, "batch", "jobs", "list", "--endpoint", "credit", *ns_args)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert [r[0] for r in rows] == ["NAME", "j1", "j2"]
    assert rows[1][3:7] == ["Failed", "100%", "9,000", "1,000"]
    code, out, _ = run(capsys, "batch", "jobs", "list", "-A", "-o", "yaml", *ns_args)
    names = {i["metadata"]["name"] for i in yaml.safe_load(out)["items"]
             if i["metadata"]["namespace"] == namespace}  # fmt: skip
    assert names == {"j1", "j2", "other"}

    code, out, err = run(capsys, "batch", "jobs", "show", "j1", *ns_args)
    assert code == 0, err
    assert "Mini-batches:  10 total, 9 succeeded, 1 failed, 0 retried" in out
    assert "Predictions:   s3://out/ns/job/predictions.csv (not written" in out
    assert "Dead letters:  s3://out/ns/job/_mlkube/deadletter/" in out
    assert "  mini-batch 3 (attempt 1) item in/bad.csv: bad row" in out

    code, out, err = run(capsys, "batch", "jobs", "cancel", "j2", *ns_args)
    assert code == 0 and "cancel requested" in out, err
    assert get(kube, namespace, "j2")["spec"]["cancel"] is True
    code, out, _ = run(capsys, "batch", "jobs", "cancel", "j1", *ns_args)
    assert code == 0 and "already Failed: nothing to cancel" in out
    assert get(kube, namespace, "j1")["spec"]["cancel"] is False

    code, _, err = run(capsys, "batch", "jobs", "resume", "j2", *ns_args)
    assert code == 1 and "is still Running" in err
    code, out, err = run(capsys, "batch", "jobs", "resume", "j1", "--name", "j1-again", *ns_args)
    assert code == 0, err
    resumed = get(kube, namespace, "j1-again")["spec"]
    assert resumed["resumeFrom"] == "j1" and resumed["deployment"] == "rows"
    assert resumed["input"] == {"uri": "s3://d/", "type": "folder", "format": "auto"}
    assert resumed["overrides"] == {"miniBatchSize": 7}

    code, out, err = run(capsys, "batch", "jobs", "delete", "other", *ns_args)
    assert code == 0 and "the output stays" in out, err
    wait_for(lambda: kube.get(API_VERSION, "BatchJob", "other", namespace) is None, timeout=10,
             what="deleted")  # fmt: skip
    code, _, err = run(capsys, "batch", "jobs", "show", "other", *ns_args)
    assert code == 1 and f"BatchJob {namespace}/other not found" in err


def score_job(namespace: str, job: str, owner: dict[str, Any], indexes: int) -> dict[str, Any]:
    """The score Job as contract C1 shapes it (labels, Indexed, owned by the BatchJob)."""
    labels = {"mlkube.dev/batch-job": job, "app.kubernetes.io/managed-by": "mlkube"}
    template_labels = {**labels, "mlkube.dev/batch-step": "score"}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{job}-score-1a2b", "namespace": namespace, "labels": labels,
                     "ownerReferences": [{"apiVersion": API_VERSION, "kind": "BatchJob",
                                          "name": job, "uid": owner["metadata"]["uid"],
                                          "controller": True}]},
        "spec": {
            "completionMode": "Indexed", "completions": indexes, "parallelism": indexes,
            "backoffLimitPerIndex": 1, "suspend": False,
            "template": {"metadata": {"labels": template_labels}, "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "scorer", "image": "mlkube/serving:dev",
                                "command": ["python", "-m", "mlkube_serving", "batch", "score"]}],
            }},
        },
    }  # fmt: skip


def test_jobs_logs_finds_the_pod_of_a_mini_batch(
    kube: Kube, namespace: str, ns_args: list[str], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    owner = kube.create({"apiVersion": API_VERSION, "kind": "BatchJob",
                         "metadata": {"name": "lj", "namespace": namespace},
                         "spec": {"endpoint": "credit", "input": {"uri": "s3://d/"}}})  # fmt: skip
    # 10 mini-batches over 3 indexes: shards [0-3], [4-6], [7-9].
    set_status(kube, namespace, "lj", **running(5, plan={
        "digest": DIGEST, "uri": "s3://o/p", "miniBatches": 10, "items": 10, "indexes": 3},
        job="lj-score-1a2b"))  # fmt: skip
    kube.create(score_job(namespace, "lj", owner, 2))  # only indexes 0 and 1 get pods
    pods = wait_for(lambda: len(p := kube.list("v1", "Pod", namespace,
                                               "mlkube.dev/batch-job=lj")) == 2 and p,
                    timeout=30, what="the Job controller's pods")  # fmt: skip
    by_index = {p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]:
                p["metadata"]["name"] for p in pods}  # fmt: skip

    code, _, err = run(capsys, "batch", "jobs", "logs", "lj", "--mini-batch", "5", *ns_args)
    # The pod was found; kwok's fake kubelet may or may not serve logs: either way it is named.
    assert f"pod {by_index['1']} (mini-batch 5, attempt 1" in err or (
        code == 1 and f"cannot read the log of pod {namespace}/{by_index['1']}" in err
    ), err
    code, _, err = run(capsys, "batch", "jobs", "logs", "lj", "--mini-batch", "8", *ns_args)
    assert code == 1
    assert "the pod of mini-batch 8 of BatchJob" in err and "is gone" in err
    assert "its records stay under s3://out/ns/job/_mlkube/" in err
    code, _, err = run(capsys, "batch", "jobs", "logs", "lj", "--mini-batch", "10", *ns_args)
    assert code == 1 and "mini-batch 10 is not in the plan" in err
