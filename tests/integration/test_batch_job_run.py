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


def test_csv_scored_by_two_indexes_equals_model_predict(
    kube: Kube, namespace: str, tmp_path: Path, executed_pods: PodExecutor
) -> None:
    train = frame(500, 99)
    fitted = LogisticRegression().fit(train, (train["f0"] - train["f3"] > 0).astype(int))
    (tmp_path / "model").mkdir()
    joblib.dump(fitted, tmp_path / "model" / "model.joblib")
    parts = [frame(30, 1), frame(25, 2)]
    (tmp_path / "in").mkdir()
    for i, part in enumerate(parts):
        part.to_csv(tmp_path / "in" / f"part-{i}.csv", index=False)
    whole = pd.concat(parts, ignore_index=True)
    out = tmp_path / "out"
    with run_operator(namespace):
        kube.create(model_object(namespace, (tmp_path / "model").as_uri()))
        kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": "BatchEndpoint",
                "metadata": {"name": "risk", "namespace": namespace},
                "spec": {
                    "deployments": [{"name": "d", "model": "risk-v1", "miniBatchSize": "40rows"}]
                },
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
                    "output": {"uri": out.as_uri()},
                },
            }
        )

        def finished() -> dict[str, Any] | None:
            obj = kube.get(API_VERSION, "BatchJob", "score-all", namespace) or {}
            phase = (obj.get("status") or {}).get("phase")
            return obj if phase in ("Succeeded", "Failed", "Cancelled") else None

        done = wait_for(finished, timeout=180, interval=0.5, what="BatchJob finished")
    status = done["status"]
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
    got = pd.read_csv(out / "predictions.csv")
    np.testing.assert_array_equal(got["prediction"].to_numpy(), fitted.predict(whole))
