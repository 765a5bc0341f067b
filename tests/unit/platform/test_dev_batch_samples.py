"""What `make dev` sets up for batch endpoints: deterministic sample input with exactly one
poisoned row, the sample BatchEndpoint reading it with its schedules suspended, and (kwok mode)
the operator settings that hand batch pods to the dev pod executor, which it starts."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from mlkube.cli import dev
from mlkube.cli.samples import load_samples, localize_batch_endpoint
from mlkube.devcluster import Cluster, batch_samples, podexec


def test_sample_input_is_deterministic_with_one_poisoned_row(tmp_path: Path) -> None:
    first = batch_samples.write_inputs(tmp_path / "a")
    second = batch_samples.write_inputs(tmp_path / "b")
    for name, folder in first.items():
        files = sorted(p.name for p in folder.iterdir())
        assert files == sorted(p.name for p in second[name].iterdir())
        for f in files:
            assert (folder / f).read_bytes() == (second[name] / f).read_bytes()
    clean = sorted(first[batch_samples.CLEAN].iterdir())
    assert len(clean) == 5
    rows = [list(csv.reader(p.open())) for p in clean]
    assert all(r[0] == [f"f{i}" for i in range(20)] and len(r) == 6001 for r in rows)
    bad_cells = [
        (p.name, i, value)
        for p in sorted(first[batch_samples.POISONED].iterdir())
        for i, row in enumerate(csv.reader(p.open()))
        for value in row
        if i and not value.replace(".", "").lstrip("-").isdigit()
    ]
    assert bad_cells == [("applications-02b.csv", 4322, "not-a-number")]


def test_sample_batch_endpoint_reads_the_sample_input_and_waits() -> None:
    [doc] = [d for d in load_samples() if d["kind"] == "BatchEndpoint"]
    local = localize_batch_endpoint(doc, "s3://mlkube-dev/samples/credit-applications/")
    assert local["metadata"]["name"] == "credit-batch"
    assert local["spec"]["deployments"] == doc["spec"]["deployments"]
    for schedule in local["spec"]["schedules"]:
        assert schedule["suspend"] is True
        assert schedule["input"]["uri"] == "s3://mlkube-dev/samples/credit-applications/"
    assert doc["spec"]["schedules"][0].get("suspend") is not True  # the sample is unchanged


def test_kwok_mode_starts_the_executor_and_annotates_batch_pods(
    tmp_path: Path, monkeypatch: Any
) -> None:
    started: dict[str, list[str]] = {}
    cluster = Cluster(tmp_path / "dev")
    monkeypatch.setattr(cluster, "add_process", lambda name, argv: started.setdefault(name, argv))
    env = dev.start_batch_support(cluster, "s3://mlkube-dev", kwok=True)
    assert env == {
        "MLKUBE_BATCH_OUTPUT_STORE": "s3://mlkube-dev/batch",
        "MLKUBE_BATCH_POD_ANNOTATIONS": "mlkube.dev/exec=local,kwok.x-k8s.io/status=custom",
        "MLKUBE_ARTIFACT_STORE": "s3://mlkube-dev/pipelines",
    }
    argv = started[podexec.PROCESS]
    assert argv[1:3] == ["-m", "mlkube.devcluster.podexec"]
    assert argv[argv.index("--work-dir") + 1] == str(cluster.workdir / "podexec")
    started.clear()
    real = dev.start_batch_support(cluster, "s3://mlkube-dev/", kwok=False)
    assert real == {
        "MLKUBE_BATCH_OUTPUT_STORE": "s3://mlkube-dev/batch",
        "MLKUBE_ARTIFACT_STORE": "s3://mlkube-dev/pipelines",
    }
    assert not started
