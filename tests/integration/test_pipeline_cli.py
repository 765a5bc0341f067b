"""`mlkube pipeline` against the real API server and the real PipelineRun controller: step Jobs
are run by the real Job controller, their pods by the dev pod executor as real processes
(`step inputs`, the user's Python under the wrapper, `step outputs`), outputs land in a file://
store. Proves create (client-side check first), list/show with the DAG, `run --wait` with live
per-step lines and its exit codes (0, 1 with the failing step's message, 124 on timeout), a
second run served from the cache, runs list/show/logs, cancel, and resume with --rerun."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.operator import run_operator
from support.podexec import PodExecutor, executor_store
from support.waiting import wait_for

IMAGE = "python@sha256:" + "1" * 64  # pinned: cacheable (the executor runs the dev python)
TRAIN = (
    "import os,json,pathlib;out=pathlib.Path(os.environ['MLKUBE_OUTPUT_MODEL']);"
    "(out/'model.txt').write_text('lr='+os.environ['MLKUBE_PARAM_LR']);print('training done');"
    "pathlib.Path(os.environ['MLKUBE_OUTPUT_SCORES']).write_text(json.dumps({'auc':0.91}))"
)
SCORE = (
    "import os,pathlib;m=pathlib.Path(os.environ['MLKUBE_INPUT_MODEL'])/'model.txt';"
    "(pathlib.Path(os.environ['MLKUBE_OUTPUT_REPORT'])/'r.txt').write_text(m.read_text())"
)


def manifest(name: str, score: str = SCORE) -> dict[str, Any]:
    steps = [
        {"name": "train", "image": IMAGE, "command": ["python", "-c", TRAIN],
         "outputs": [{"name": "model"}, {"name": "scores", "type": "metrics"}]},
        {"name": "score", "image": IMAGE, "command": ["python", "-c", score],
         "inputs": [{"name": "model", "fromStep": {"step": "train", "output": "model"}}],
         "outputs": [{"name": "report"}]},
        {"name": "gate", "type": "evaluate", "evaluate": {"metrics": [
            {"name": "auc", "from": {"step": "train", "output": "scores"}, "min": 0.8}]}},
    ]  # fmt: skip
    return {"apiVersion": API_VERSION, "kind": "Pipeline", "metadata": {"name": name},
            "spec": {"parameters": [{"name": "lr", "type": "number", "default": "0.1"}],
                     "steps": steps}}  # fmt: skip


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def proc(*argv: str) -> tuple[int, str, str]:
    """The CLI as its own process: while the in-process operator runs, its runner holds
    sys.stdout and sys.stderr (a process is also what a user runs)."""
    done = subprocess.run([sys.executable, "-m", "mlkube", *argv], capture_output=True,
                          text=True, timeout=240, check=False)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def store(tmp_path: Path, pod_executor: PodExecutor) -> Iterator[Path]:
    with executor_store(tmp_path / "store") as root:
        yield root


@pytest.fixture
def ns_args(cluster: Cluster, namespace: str) -> list[str]:
    return ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]


def test_create_show_run_wait_cache_runs_show_and_logs(
    kube: Kube, namespace: str, tmp_path: Path, store: Path, ns_args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bad = tmp_path / "bad.yaml"
    cyclic = manifest("cyclic")
    cyclic["spec"]["steps"][0]["dependsOn"] = ["score"]
    bad.write_text(yaml.safe_dump(cyclic))
    code, _, err = cli(capsys, "pipeline", "create", "-f", str(bad), *ns_args)
    assert code == 1 and "dependency cycle: train -> score -> train" in err, err
    assert kube.get(API_VERSION, "Pipeline", "cyclic", namespace) is None

    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(manifest("toy")))
    code, out, err = cli(capsys, "pipeline", "create", "-f", str(file), *ns_args)
    assert code == 0, err
    assert out.strip() == f"pipeline.mlkube.dev/toy created in namespace {namespace}"
    code, out, _ = cli(capsys, "pipeline", "show", "toy", *ns_args)
    assert code == 0
    assert "  train → {gate, score}" in out.splitlines(), out
    assert "   2  score  ← train" in out.splitlines(), out
    code, out, _ = cli(capsys, "pipeline", "list", *ns_args)
    assert out.splitlines()[1].split()[:2] == ["toy", "3"]

    code, _, err = cli(capsys, "pipeline", "run", "toy", "-p", "lr=fast", *ns_args)
    assert code == 1 and "parameter lr: 'fast' is not a number" in err
    with run_operator(namespace):
        code, out, err = proc("pipeline", "run", "toy", "--name", "r1", "-p", "lr=0.2",
                             "--wait", "120", *ns_args)  # fmt: skip
        assert code == 0, err
        assert "PipelineRun r1 Succeeded (3/3 steps)" in out, (out, err)
        lines = err.splitlines()
        assert any(line.startswith("train") and "Running    attempt 1  cache miss (no entry)"
                   in line for line in lines), err  # fmt: skip
        assert any(line.startswith("score") and "Succeeded  attempt 1  cache miss (no entry)"
                   in line for line in lines), err  # fmt: skip
        assert any("gate passed: auc 0.91 >= min 0.80" in line for line in lines), err
        assert lines[-1] == "run Succeeded (3/3 steps)"

        code, out, err = proc("pipeline", "run", "toy", "--name", "r2", "-p", "lr=0.2",
                             "--wait", *ns_args)  # fmt: skip
        assert code == 0, err
        hits = [line for line in err.splitlines() if "cache hit (run r1)" in line]
        assert [h.split()[0] for h in hits] == ["train", "score"], err

    code, out, _ = cli(capsys, "pipeline", "runs", "list", "toy", *ns_args)
    assert [row.split()[:4] for row in out.splitlines()[1:]] == [
        ["r1", "toy", "Succeeded", "3/3"], ["r2", "toy", "Succeeded", "3/3"]]  # fmt: skip
    code, out, _ = cli(capsys, "pipeline", "runs", "show", "r1", *ns_args)
    text = out.splitlines()
    assert any(row.split()[:3] == ["train", "Succeeded", "1"] for row in text), out
    assert "    metrics: auc=0.91" in text and "Parameters:  lr=0.2" in text
    report = next(i for i, row in enumerate(text) if row.startswith("    report: file://"))
    assert text[report + 1].strip().startswith("sha256:")
    assert "   2  score  Succeeded  ← train" in text, out

    code, out, err = cli(capsys, "pipeline", "runs", "logs", "r1", "--step", "train", *ns_args)
    pods = kube.list("v1", "Pod", namespace, "mlkube.dev/pipeline-run=r1,"
                     "mlkube.dev/pipeline-step=train")  # fmt: skip
    name = pods[0]["metadata"]["name"]
    # The pod is found; kwok's fake kubelet may or may not serve logs: either way it is named.
    assert f"==> step train: pod {name}" in err or (
        code == 1 and f"cannot read the log of pod {namespace}/{name}" in err), err  # fmt: skip
    code, _, err = cli(capsys, "pipeline", "runs", "logs", "r2", *ns_args)
    assert code == 1 and "served from the cache" in err

    # run-local NAME reads the Pipeline from the cluster and runs its steps here.
    code, out, err = proc("pipeline", "run-local", "toy", "-p", "lr=0.3", "--cache-dir",
                          str(tmp_path / "local"), *ns_args)  # fmt: skip
    assert code == 0, err
    assert "Phase:       Succeeded (3/3 steps)" in out and "Parameters:  lr=0.3" in out
    report = next((tmp_path / "local" / namespace / "pipelineruns").glob("*/score/a1/outputs"))
    assert (report / "report" / "r.txt").read_text() == "lr=0.3"

    code, out, _ = cli(capsys, "pipeline", "delete", "toy", *ns_args)
    assert code == 0 and out.strip() == "pipeline.mlkube.dev/toy deleted"
    code, _, err = cli(capsys, "pipeline", "show", "toy", *ns_args)
    assert code == 1 and f"Pipeline {namespace}/toy not found" in err


def test_failure_timeout_cancel_and_resume(
    kube: Kube, namespace: str, tmp_path: Path, store: Path, ns_args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    failing = manifest("bad", score="import sys;print('no model here',file=sys.stderr);sys.exit(4)")
    slow = manifest("slow", score="import time;time.sleep(300)")
    for obj in (failing, slow):
        kube.create({**obj, "metadata": {"name": obj["metadata"]["name"], "namespace": namespace}})
    with run_operator(namespace):
        code, out, err = proc("pipeline", "run", "bad", "--name", "b1", "--wait", "120",
                             *ns_args)  # fmt: skip
        assert code == 1
        assert "PipelineRun b1 Failed" in err and "  step score Failed: " in err, err
        assert "no model here" in err

        code, _, err = proc("pipeline", "run", "slow", "--name", "s1", "--wait", "3",
                           *ns_args)  # fmt: skip
        assert code == 124 and "PipelineRun s1 is still Running after 3s" in err, err
        wait_for(lambda: any(s.get("name") == "score" and s.get("phase") == "Running"
                             for s in (kube.get(API_VERSION, "PipelineRun", "s1", namespace)
                                       or {}).get("status", {}).get("steps", [])),
                 timeout=60, interval=0.5, what="score running")  # fmt: skip
        code, _, err = proc("pipeline", "runs", "resume", "s1", *ns_args)
        assert code == 1 and "is still Running: a run resumes a finished one" in err
        code, out, _ = proc("pipeline", "runs", "cancel", "s1", *ns_args)
        assert code == 0 and "cancel requested" in out
        run = kube.get(API_VERSION, "PipelineRun", "s1", namespace) or {}
        assert run["spec"]["cancel"] is True
        wait_for(lambda: (kube.get(API_VERSION, "PipelineRun", "s1", namespace) or {}).get(
            "status", {}).get("phase") == "Cancelled", timeout=60, interval=0.5,
            what="run cancelled")  # fmt: skip
        code, out, _ = proc("pipeline", "runs", "cancel", "s1", *ns_args)
        assert "already Cancelled: nothing to cancel" in out

        code, out, err = proc("pipeline", "runs", "resume", "s1", "--rerun", "nope",
                             *ns_args)  # fmt: skip
        assert code == 1 and "--rerun: no step nope" in err
        code, out, err = proc("pipeline", "runs", "resume", "s1", "--name", "s2",
                             "--rerun", "train", "--wait", "2", *ns_args)  # fmt: skip
        assert "pipelinerun.mlkube.dev/s2 created" in out and "(resumes s1" in out
        resumed = kube.get(API_VERSION, "PipelineRun", "s2", namespace) or {}
        assert resumed["spec"] == {"pipeline": "slow", "resumeFrom": "s1",
                                   "rerunSteps": ["train"], "cachePolicy": "Default",
                                   "cancel": False}  # fmt: skip
        code, out, _ = proc("pipeline", "runs", "cancel", "s2", *ns_args)
        assert code == 0
