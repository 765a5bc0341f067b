"""A BatchJob end to end on the real control plane with real processes: the operator's plan,
Indexed score (2 indexes) and merge Jobs run by the real Job controller, their pods by the dev
pod executor (contract C2) as the real scorer; the job ends Succeeded with exact counts and
predictions equal to `model.predict` on the whole input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlkube.contract import API_VERSION
from mlkube.handlers.config import operator_config
from mlkube.k8s import Kube
from support.operator import patched_env, run_operator
from support.podexec import POD_ANNOTATIONS_ENV, PodExecutor
from support.waiting import wait_for

COLUMNS = ["f0", "f1", "f2", "f3"]


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))), columns=COLUMNS)


@pytest.fixture
def executed_pods(pod_executor: PodExecutor) -> Iterator[PodExecutor]:
    """The operator annotates batch pods for the executor, as the dev cluster does."""
    operator_config.cache_clear()
    with patched_env({"MLKUBE_BATCH_POD_ANNOTATIONS": POD_ANNOTATIONS_ENV}):
        yield pod_executor
    operator_config.cache_clear()


def model_object(namespace: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": "risk-v1", "namespace": namespace},
        "spec": {
            "modelName": "risk",
            "version": "1",
            "framework": "sklearn",
            "artifact": {"uri": uri},
        },
    }


def run_batch_job(
    kube: Kube, namespace: str, tmp_path: Path, inputs: list[str], **deployment: Any
) -> tuple[dict[str, Any], LogisticRegression]:
    """Register a model, write the CSV inputs, run one BatchJob to its end; (status, model)."""
    train = frame(500, 99)
    fitted = LogisticRegression().fit(train, (train["f0"] - train["f3"] > 0).astype(int))
    (tmp_path / "model").mkdir()
    joblib.dump(fitted, tmp_path / "model" / "model.joblib")
    (tmp_path / "in").mkdir()
    for i, text in enumerate(inputs):
        (tmp_path / "in" / f"part-{i}.csv").write_text(text)
    dep = {"name": "d", "model": "risk-v1", "miniBatchSize": "40rows", **deployment}
    with run_operator(namespace):
        kube.create(model_object(namespace, (tmp_path / "model").as_uri()))
        kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": "BatchEndpoint",
                "metadata": {"name": "risk", "namespace": namespace},
                "spec": {"deployments": [dep]},
            }
        )
        kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": "BatchJob",
                "metadata": {"name": "score-all", "namespace": namespace},
                "spec": {
                    "endpoint": "risk",
                    "input": {"uri": (tmp_path / "in").as_uri(), "format": "csv"},
                    "output": {"uri": (tmp_path / "out").as_uri()},
                },
            }
        )

        def finished() -> dict[str, Any] | None:
            obj = kube.get(API_VERSION, "BatchJob", "score-all", namespace) or {}
            phase = (obj.get("status") or {}).get("phase")
            return obj if phase in ("Succeeded", "Failed", "Cancelled") else None

        done = wait_for(finished, timeout=180, interval=0.5, what="BatchJob finished")
    return done["status"], fitted


def test_csv_scored_by_two_indexes_equals_model_predict(
    kube: Kube, namespace: str, tmp_path: Path, executed_pods: PodExecutor
) -> None:
    parts = [frame(30, 1), frame(25, 2)]
    csvs = [part.to_csv(index=False) for part in parts]
    status, fitted = run_batch_job(kube, namespace, tmp_path, csvs)
    assert status["phase"] == "Succeeded", (status, executed_pods.output()[-3000:])
    assert status["plan"]["miniBatches"] == 2 and status["plan"]["indexes"] == 2
    assert status["items"] == {"total": 55, "succeeded": 55, "failed": 0}
    assert status["miniBatches"]["succeeded"] == 2 and status["progress"] == 100
    score = next(
        j
        for j in kube.list("batch/v1", "Job", namespace)
        if j["metadata"]["name"].startswith("score-all-score-")
    )
    assert score["spec"]["completions"] == 2 and score["status"]["succeeded"] == 2
    got = pd.read_csv(tmp_path / "out" / "predictions.csv")
    whole = pd.concat(parts, ignore_index=True)
    np.testing.assert_array_equal(got["prediction"].to_numpy(), fitted.predict(whole))


def test_a_poisoned_file_over_the_threshold_fails_the_job_and_says_why(
    kube: Kube, namespace: str, tmp_path: Path, executed_pods: PodExecutor
) -> None:
    poisoned = "f0,f1,f2,f3\n" + "oops,1,2,3\n" * 20
    status, _ = run_batch_job(
        kube, namespace, tmp_path, [frame(30, 1).to_csv(index=False), poisoned], errorThreshold=0
    )
    assert status["phase"] == "Failed", (status, executed_pods.output()[-3000:])
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "ErrorThresholdExceeded"
    # A failed range is not parsed: its rows count as the planner's estimate (§10), 20 ± 1.
    assert 19 <= status["items"]["failed"] <= 21
    errors = status["lastErrors"]
    assert errors and errors[-1]["miniBatch"] == 1 and errors[-1]["message"]
    score = next(
        j
        for j in kube.list("batch/v1", "Job", namespace)
        if j["metadata"]["name"].startswith("score-all-score-")
    )
    assert not (tmp_path / "out" / "predictions.csv").exists()
    assert all(
        "merge" not in j["metadata"]["name"] for j in kube.list("batch/v1", "Job", namespace)
    )
    assert score["spec"]["completions"] == 2


def test_resume_reruns_only_the_failed_mini_batch_and_completes_the_output(
    kube: Kube, namespace: str, tmp_path: Path, executed_pods: PodExecutor
) -> None:
    good = frame(30, 1)
    poisoned = "f0,f1,f2,f3\n" + "x.5,1,2,3\n" * 20  # same bytes as the fixed file below
    status, fitted = run_batch_job(kube, namespace, tmp_path, [good.to_csv(index=False), poisoned])
    assert status["phase"] == "Succeeded", (status, executed_pods.output()[-3000:])
    assert status["items"]["failed"] >= 19 and status["items"]["succeeded"] == 30
    first_part = (tmp_path / "out/_mlkube/parts/mb-000000000.csv").stat().st_mtime_ns
    # The data is repaired in place (same size: the recorded plan still fits) and resumed.
    fixed = pd.DataFrame({"f0": [1.5] * 20, "f1": [1] * 20, "f2": [2] * 20, "f3": [3] * 20})
    (tmp_path / "in/part-1.csv").write_text(fixed.to_csv(index=False))
    assert (tmp_path / "in/part-1.csv").stat().st_size == len(poisoned)
    with run_operator(namespace):
        kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": "BatchJob",
                "metadata": {"name": "again", "namespace": namespace},
                "spec": {
                    "endpoint": "risk",
                    "resumeFrom": "score-all",
                    "input": {"uri": (tmp_path / "in").as_uri(), "format": "csv"},
                },
            }
        )

        def finished() -> dict[str, Any] | None:
            obj = kube.get(API_VERSION, "BatchJob", "again", namespace) or {}
            phase = (obj.get("status") or {}).get("phase")
            return obj if phase in ("Succeeded", "Failed", "Cancelled") else None

        done = wait_for(finished, timeout=180, interval=0.5, what="resumed BatchJob finished")
    again = done["status"]
    assert again["phase"] == "Succeeded", (again, executed_pods.output()[-3000:])
    assert again["outputUri"] == (tmp_path / "out").as_uri()
    assert again["plan"]["indexes"] == 1  # only the failed mini-batch ran
    assert again["items"] == {"total": 50, "succeeded": 50, "failed": 0}
    assert (tmp_path / "out/_mlkube/parts/mb-000000000.csv").stat().st_mtime_ns == first_part
    got = pd.read_csv(tmp_path / "out" / "predictions.csv")
    whole = pd.concat([good, fixed], ignore_index=True)
    np.testing.assert_array_equal(got["prediction"].to_numpy(), fitted.predict(whole))
