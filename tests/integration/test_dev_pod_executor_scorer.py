"""The batch scorer's three steps as Jobs of the C1 shape (issue 11), run by the dev pod
executor through the REAL Job controller: a plan Job whose termination message carries the
plan summary, an Indexed score Job whose pods fetch the model with the storage initializer
(digest verified) into an emptyDir, and a merge Job — over `make dev`'s sample input, with
exact counts. Hand-written Jobs: what the operator builds is tested elsewhere; this proves the
executor runs such pods faithfully."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli.batch_api import pod_logs
from mlkube.devcluster import batch_samples
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.podexec import POD_ANNOTATIONS, PodExecutor
from support.waiting import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "examples" / "models" / "credit-risk" / "3"
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
# docs/batch-endpoints.md §3: exit 42 (threshold) and 43 (bad plan, model, input) fail the Job.
POLICY = {
    "rules": [
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "scorer", "operator": "In", "values": [42, 43]},
        }
    ]
}


def indexed(completions: int, per_index: int) -> dict[str, Any]:
    return {
        "completionMode": "Indexed",
        "completions": completions,
        "parallelism": 2,
        "backoffLimit": None,
        "backoffLimitPerIndex": per_index,
        "podFailurePolicy": POLICY,
    }


def scorer(args: list[str], mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": "scorer",
        "image": "mlkube-serving:dev",
        "command": ["python", "-m", "mlkube_serving", *args],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *(mounts or [])],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def batch_job(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    inits = spec.pop("initContainers", [])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"mlkube.dev/batch-job": "sample"}},
        "spec": {"backoffLimit": 0, **spec, "template": {
            "metadata": {"annotations": POD_ANNOTATIONS},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                     "initContainers": inits, "containers": containers,
                     "volumes": [{"name": "model", "emptyDir": {}},
                                 {"name": "tmp", "emptyDir": {}}]}}},
    }  # fmt: skip


def run_job(
    kube: Kube, namespace: str, job: dict[str, Any], timeout: float, ends: str = "Complete"
) -> str:
    """Create the Job, wait until it ends as `ends`; the termination message of its pod."""
    job["metadata"]["namespace"] = namespace
    kube.create(job)
    name = job["metadata"]["name"]

    def finished() -> str | None:
        conds = ((kube.get("batch/v1", "Job", name, namespace) or {}).get("status") or {}).get(
            "conditions"
        ) or []
        done = [c["type"] for c in conds if c["status"] == "True"]
        return next((t for t in done if t in ("Complete", "Failed")), None)

    assert wait_for(finished, timeout, 0.5, f"Job {name}") == ends, name
    pods = kube.list("v1", "Pod", namespace, label_selector=f"batch.kubernetes.io/job-name={name}")
    state = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"] == 0) == (ends == "Complete"), state
    return str(state.get("message", ""))  # `score` writes none (as built)


def test_plan_score_merge_of_the_sample_input(
    kube: Kube, namespace: str, pod_executor: PodExecutor, tmp_path: Path
) -> None:
    inputs = batch_samples.write_inputs(tmp_path / "in")[batch_samples.CLEAN]
    out = (tmp_path / "out").as_uri()
    plan = json.loads(run_job(kube, namespace, batch_job("sample-plan", [scorer(
        ["batch", "plan", "--input", inputs.as_uri(), "--output", out,
         "--mini-batch-size", "15000rows"])]), 60))  # fmt: skip
    assert plan["miniBatches"] == 3, plan
    # The scorer's own log (its summary line) through the API, as `mlkube batch jobs logs`
    # reads it in `make dev`: kwok serves the file the executor keeps.
    selector = "batch.kubernetes.io/job-name=sample-plan"
    pod = kube.list("v1", "Pod", namespace, label_selector=selector)[0]["metadata"]["name"]
    assert plan["digest"] in pod_logs(kube, namespace, pod, "scorer")

    init, score = score_pod(out, plan["digest"], 2)
    job = batch_job("sample-score", [score], initContainers=[init], **indexed(2, 1))
    run_job(kube, namespace, job, 180)

    merged = json.loads(run_job(kube, namespace, batch_job("sample-merge", [scorer(
        ["batch", "merge", "--output", out])]), 60))  # fmt: skip
    rows = batch_samples.CLEAN_FILES * batch_samples.CLEAN_ROWS
    assert merged["items"] == {"total": rows, "succeeded": rows, "failed": 0}, merged
    assert merged["miniBatches"]["succeeded"] == 3
    with (tmp_path / "out" / "predictions.csv").open() as handle:
        predictions = list(csv.reader(handle))
    assert predictions[0] == ["prediction"] and len(predictions) == rows + 1
    assert {p[0] for p in predictions[1:]} <= {"0", "1"}


def score_pod(out: str, plan_digest: str, indexes: int, *extra: str) -> list[dict[str, Any]]:
    """The storage initializer (digest verified) and the scorer of one index, C1's shape."""
    digest = compute_digest(MODEL.as_uri()).digest
    fetch = ["storage-initializer", "--uri", MODEL.as_uri(), "--dest", "/mnt/models",
             "--digest", digest]  # fmt: skip
    init = {**scorer(fetch, [{"name": "model", "mountPath": "/mnt/models"}]),
            "name": "storage-initializer"}  # fmt: skip
    args = ["batch", "score", "--output", out, "--model", "/mnt/models",
            "--indexes", str(indexes), "--plan-digest", plan_digest,
            "--model-digest", digest, *extra]  # fmt: skip
    score = scorer(args, [{"name": "model", "mountPath": "/mnt/models", "readOnly": True}])
    index = {"fieldRef": {"fieldPath": INDEX_FIELD}}
    score["env"].append({"name": "JOB_COMPLETION_INDEX", "valueFrom": index})
    return [init, score]


def test_poisoned_input_over_the_threshold_fails_the_job_by_exit_code(
    kube: Kube, namespace: str, pod_executor: PodExecutor, tmp_path: Path
) -> None:
    """Exit 42 (error threshold) → podFailurePolicy FailJob at once; the reason is the
    scorer's log tail (FallbackToLogsOnError: `score` writes no termination message)."""
    inputs = batch_samples.write_inputs(tmp_path / "in")[batch_samples.POISONED]
    out = (tmp_path / "out").as_uri()
    plan = json.loads(run_job(kube, namespace, batch_job("bad-plan", [scorer(
        ["batch", "plan", "--input", inputs.as_uri(), "--output", out,
         "--mini-batch-size", "10000rows"])]), 60))  # fmt: skip
    assert plan["miniBatches"] == 4, plan
    # The poisoned row is one failed item (docs/batch-endpoints.md §10, per-row errors), so a
    # threshold of 0 is what this one bad value exceeds.
    init, score = score_pod(out, plan["digest"], 1, "--error-threshold", "0")
    job = batch_job("bad-score", [score], initContainers=[init], **indexed(1, 3))
    message = run_job(kube, namespace, job, 120, ends="Failed")
    status = (kube.get("batch/v1", "Job", "bad-score", namespace) or {})["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PodFailurePolicy" and "exit code 42" in failed["message"]
    assert "not-a-number" in message, message
