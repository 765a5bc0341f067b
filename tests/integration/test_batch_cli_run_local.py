"""`mlkube batch run-local JOB` resolves everything from the cluster: the BatchJob, its
endpoint's deployment and the Model the operator verified; the artifact is fetched and its
digest checked by the storage initializer before any scorer process loads it."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from kopf.testing import KopfRunner
from sklearn.linear_model import LogisticRegression

from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.endpoints import model_object
from support.waiting import wait_for

COLUMNS = ["f0", "f1", "f2"]


def test_run_local_from_the_cluster_scores_with_the_verified_model(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path,
    running_operator: KopfRunner, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    rng = np.random.default_rng(7)
    data = pd.DataFrame(rng.normal(size=(600, 3)), columns=COLUMNS)
    fitted = LogisticRegression().fit(data, (data["f0"] - data["f2"] > 0).astype(int))
    (tmp_path / "model").mkdir()
    joblib.dump(fitted, tmp_path / "model" / "model.joblib")
    (tmp_path / "in").mkdir()
    data.iloc[:250].to_csv(tmp_path / "in" / "a.csv", index=False)
    data.iloc[250:].to_csv(tmp_path / "in" / "b.csv", index=False)

    kube.create(model_object("credit-v1", namespace, (tmp_path / "model").as_uri(), "1"))
    wait_for(lambda: ((kube.get(API_VERSION, "Model", "credit-v1", namespace) or {})
                      .get("status") or {}).get("phase") == "Ready",
             timeout=30, what="Model Ready")  # fmt: skip
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "BatchEndpoint",
            "metadata": {"name": "credit", "namespace": namespace},
            "spec": {
                "defaultDeployment": "main",
                "deployments": [{"name": "main", "model": "credit-v1", "miniBatchSize": "100rows"}],
            },
        }
    )
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "BatchJob",
            "metadata": {"name": "nightly", "namespace": namespace},
            "spec": {"endpoint": "credit", "input": {"uri": (tmp_path / "in").as_uri()}},
        }
    )
    args = ["batch", "run-local", "nightly", "--work-dir", str(tmp_path / "wd"),
            "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]  # fmt: skip

    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "items:        600 total, 600 succeeded, 0 failed" in out
    predictions = tmp_path / "wd" / "output" / "predictions.csv"
    assert f"predictions:  {predictions.as_uri()}" in out
    got = pd.read_csv(predictions)["prediction"].to_numpy()
    np.testing.assert_array_equal(got, fitted.predict(data))

    # Bytes changed after the operator verified them: refused before anything loads them.
    joblib.dump(LogisticRegression().fit(data, data["f1"] > 0), tmp_path / "model" / "model.joblib")
    assert main([*args[:3], "--work-dir", str(tmp_path / "wd2"), *args[5:]]) == 1
    err = capsys.readouterr().err
    assert "error: storage initializer failed for" in err and "digest" in err.lower()
    assert not (tmp_path / "wd2" / "output").exists()
