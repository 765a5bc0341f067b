"""PipelineRuns end to end on the real control plane: the operator's step Jobs are run by the
real Job controller, their pods by the dev pod executor as real processes (the `inputs` and
`outputs` containers are the real `python -m mlkube_serving step`, `main` the user's Python
under the /bin/sh wrapper), outputs land in a file:// artifact store with their digests.
Proves DAG order, caching (hit, changed input bytes, deleted output), retry then failFast,
cancel, and an operator restart mid-run that neither re-runs a finished step nor duplicates
a Job."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.operator import OPERATOR_KUBECONFIG_ENV, run_operator, stop_process
from support.podexec import PodExecutor, executor_store
from support.waiting import wait_for

IMAGE = "python@sha256:" + "1" * 64  # pinned: cacheable (the executor runs the dev python)
FINISHED = ("Succeeded", "Failed", "Cancelled")

PREP = (
    "import os,pathlib;src=pathlib.Path(os.environ['MLKUBE_INPUT_RAW']);"
    "out=pathlib.Path(os.environ['MLKUBE_OUTPUT_OUT']);"
    "text=''.join(p.read_text() for p in sorted(src.iterdir()));"
    "(out/'data.txt').write_text(text.upper())"
)
TRAIN = (
    "import os,json,pathlib;data=pathlib.Path(os.environ['MLKUBE_INPUT_DATA'])/'data.txt';"
    "out=pathlib.Path(os.environ['MLKUBE_OUTPUT_OUT']);"
    "(out/'model.txt').write_text('model of '+data.read_text());"
    "pathlib.Path(os.environ['MLKUBE_OUTPUT_AUC']).write_text(json.dumps({'auc':0.91}))"
)
SCORE = (
    "import os,pathlib;m=pathlib.Path(os.environ['MLKUBE_INPUT_MODEL'])/'model.txt';"
    "out=pathlib.Path(os.environ['MLKUBE_OUTPUT_OUT']);(out/'score.txt').write_text(m.read_text())"
)


def py_step(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["python", "-c", code],
            "outputs": [{"name": "out"}], **extra}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, pod_executor: PodExecutor) -> Iterator[Path]:
    """The operator annotates step pods for the executor and writes to a file:// store."""
    with executor_store(tmp_path / "store") as root:
        yield root


def pipeline(kube: Kube, namespace: str, steps: list[dict[str, Any]], **spec: Any) -> None:
    kube.create({"apiVersion": API_VERSION, "kind": "Pipeline",
                 "metadata": {"name": "p", "namespace": namespace},
                 "spec": {"steps": steps, **spec}})  # fmt: skip


def start_run(kube: Kube, namespace: str, name: str, **spec: Any) -> None:
    kube.create({"apiVersion": API_VERSION, "kind": "PipelineRun",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"pipeline": "p", **spec}})  # fmt: skip


def finished(kube: Kube, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "PipelineRun", name, namespace) or {}
        return obj if (obj.get("status") or {}).get("phase") in FINISHED else None

    return dict(wait_for(done, timeout=timeout, interval=0.5, what=f"run {name} finished"))


def why(obj: dict[str, Any]) -> str:
    """The run's steps, one line each: what a failed assertion needs to say."""
    return "\n".join(f"{s['name']}: {s.get('phase')}: {s.get('message')}"
                     for s in obj["status"].get("steps") or [])  # fmt: skip


def steps_of(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in obj["status"]["steps"]}


def jobs_of(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in kube.list("batch/v1", "Job", namespace)}


def three_steps(raw: Path) -> list[dict[str, Any]]:
    return [
        py_step("prep", PREP, inputs=[{"name": "raw", "uri": raw.as_uri()}]),
        py_step("train", TRAIN,
                inputs=[{"name": "data", "fromStep": {"step": "prep", "output": "out"}}],
                outputs=[{"name": "out"}, {"name": "auc", "type": "metrics"}]),
        py_step("score", SCORE,
                inputs=[{"name": "model", "fromStep": {"step": "train", "output": "out"}}]),
    ]  # fmt: skip


def test_a_dag_runs_in_order_then_hits_the_cache_and_misses_for_each_reason(
    kube: Kube, namespace: str, tmp_path: Path, store: Path, pod_executor: PodExecutor
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text("x,y\n1,2\n")
    pipeline(kube, namespace, three_steps(raw))
    with run_operator(namespace):
        started = time.monotonic()
        start_run(kube, namespace, "r1")
        first = finished(kube, namespace, "r1")
        print(f"\n3-step run: {time.monotonic() - started:.1f}s", file=sys.__stderr__)
        assert first["status"]["phase"] == "Succeeded", why(first)
        steps = steps_of(first)
        jobs = jobs_of(kube, namespace)
        assert sorted(jobs) == ["r1-prep-a1", "r1-score-a1", "r1-train-a1"]
        created = {n: j["metadata"]["creationTimestamp"] for n, j in jobs.items()}
        assert created["r1-prep-a1"] <= created["r1-train-a1"] <= created["r1-score-a1"]
        score_out = steps["score"]["outputs"][0]
        assert score_out["digest"].startswith("sha256:")
        scored = Path(score_out["uri"].removeprefix("file://")) / "score.txt"
        assert scored.read_text() == "model of X,Y\n1,2\n"
        assert steps["train"]["metrics"] == {"auc": 0.91}
        assert all(not s["cache"]["hit"] and s["cache"]["reason"] == "no entry"
                   for s in steps.values())  # fmt: skip
        assert kube.get("v1", "ConfigMap", "r1-spec", namespace)["immutable"] is True

        started = time.monotonic()
        start_run(kube, namespace, "r2")
        second = finished(kube, namespace, "r2")
        print(f"fully cached 3-step run: {time.monotonic() - started:.1f}s", file=sys.__stderr__)
        assert second["status"]["phase"] == "Succeeded"
        for s in steps_of(second).values():
            assert s["cache"] == {"hit": True, "key": steps[s["name"]]["cache"]["key"],
                                  "sourceRun": "r1", "reason": "hit"}  # fmt: skip
        assert not any(n.startswith("r2-") for n in jobs_of(kube, namespace))

        # Changed input bytes: a new key for prep (and so for its dependents): they run.
        (raw / "a.csv").write_text("x,y\n3,4\n")
        start_run(kube, namespace, "r3")
        third = steps_of(finished(kube, namespace, "r3"))
        assert third["prep"]["cache"]["hit"] is False
        assert third["prep"]["cache"]["key"] != steps["prep"]["cache"]["key"]
        assert third["prep"]["cache"]["reason"] == "no entry"
        assert "r3-prep-a1" in jobs_of(kube, namespace)

        # A deleted cached output: the entry exists but cannot be used.
        gone = Path(steps_of(first)["score"]["outputs"][0]["uri"].removeprefix("file://"))
        (raw / "a.csv").write_text("x,y\n1,2\n")
        for f in gone.iterdir():
            f.unlink()
        gone.rmdir()
        start_run(kube, namespace, "r4")
        fourth = finished(kube, namespace, "r4")
        assert fourth["status"]["phase"] == "Succeeded", fourth["status"]
        four = steps_of(fourth)
        assert four["prep"]["cache"]["hit"] and four["train"]["cache"]["hit"]
        assert four["score"]["cache"]["reason"] == "output out missing"
        assert "r4-score-a1" in jobs_of(kube, namespace)


def test_retry_then_failure_fails_the_run_and_failfast_cancels_a_running_sibling(
    kube: Kube, namespace: str, store: Path, pod_executor: PodExecutor
) -> None:
    flaky = py_step("flaky", "import sys;print('bad row 7',file=sys.stderr);sys.exit(3)",
                    retry={"limit": 1, "backoff": {"duration": "1s"}})  # fmt: skip
    slow = py_step("slow", "import time;time.sleep(120)")
    pipeline(kube, namespace, [flaky, slow])
    with run_operator(namespace):
        start_run(kube, namespace, "r1")
        obj = finished(kube, namespace, "r1", timeout=90)
    status = obj["status"]
    assert status["phase"] == "Failed", why(obj)
    steps = steps_of(obj)
    assert steps["flaky"]["phase"] == "Failed" and steps["flaky"]["attempts"] == 2
    assert "bad row 7" in steps["flaky"]["message"]
    assert steps["slow"]["phase"] == "Cancelled"
    jobs = jobs_of(kube, namespace)
    assert {"r1-flaky-a1", "r1-flaky-a2"} <= set(jobs)
    assert "r1-slow-a1" not in jobs or jobs["r1-slow-a1"]["metadata"].get("deletionTimestamp")
    reasons = {e.get("reason") for e in kube.list("v1", "Event", namespace)}
    assert {"StepStarted", "StepRetrying", "StepFailed", "RunFailed"} <= reasons


def test_cancel_deletes_the_running_job(
    kube: Kube, namespace: str, store: Path, pod_executor: PodExecutor
) -> None:
    pipeline(kube, namespace, [py_step("slow", "import time;time.sleep(120)")])
    with run_operator(namespace):
        start_run(kube, namespace, "r1")
        wait_for(lambda: "r1-slow-a1" in jobs_of(kube, namespace), timeout=60, interval=0.5,
                 what="step Job")  # fmt: skip
        kube.patch(API_VERSION, "PipelineRun", "r1", {"spec": {"cancel": True}}, namespace)
        obj = finished(kube, namespace, "r1")
        wait_for(lambda: "r1-slow-a1" not in jobs_of(kube, namespace), timeout=60,
                 interval=0.5, what="Job deleted")  # fmt: skip
    assert obj["status"]["phase"] == "Cancelled"
    assert steps_of(obj)["slow"]["phase"] == "Cancelled"


@contextlib.contextmanager
def operator_process(namespace: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`mlkube operator` as a real process (so it can be killed mid-run, not stopped politely)."""
    argv = [
        sys.executable,
        "-m",
        "mlkube",
        "operator",
        "--kubeconfig",
        os.environ[OPERATOR_KUBECONFIG_ENV],
        "--namespace",
        namespace,
        "--standalone",
    ]
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        yield process
    finally:
        stop_process(process, 20)


def test_an_operator_restarted_mid_run_resumes_without_rerunning_or_duplicating(
    kube: Kube, namespace: str, tmp_path: Path, store: Path, pod_executor: PodExecutor
) -> None:
    # A step sleeps while the operator is killed (the test cannot hand it a file to wait
    # for: the dev executor maps every /tmp path in a pod's command to the pod's own /tmp).
    wait = ("import os,time,pathlib;time.sleep(6);"
            "pathlib.Path(os.environ['MLKUBE_OUTPUT_OUT'],'x').write_text('ok')")  # fmt: skip
    first = py_step("first", "import os,pathlib;pathlib.Path(os.environ['MLKUBE_OUTPUT_OUT'],"
                    "'x').write_text('1')")  # fmt: skip
    second = py_step("second", wait, dependsOn=["first"])
    pipeline(kube, namespace, [first, second])
    log = tmp_path / "operator.log"
    with operator_process(namespace, log) as process:
        start_run(kube, namespace, "r1")
        try:
            wait_for(lambda: "r1-second-a1" in jobs_of(kube, namespace), timeout=90,
                     interval=0.5, what="second step started")  # fmt: skip
        except AssertionError as err:
            run = kube.get(API_VERSION, "PipelineRun", "r1", namespace) or {}
            raise AssertionError(f"{why(run)}\n{log.read_text()[-3000:]}") from err
        process.kill()  # no shutdown of any kind: as an OOM kill or a lost node would
        process.wait(10)
    # The operator is gone; the step finishes meanwhile; a new operator process takes over.
    wait_for(lambda: (jobs_of(kube, namespace)["r1-second-a1"].get("status") or {}).get(
        "succeeded"), timeout=90, interval=0.5, what="second step done")  # fmt: skip
    assert kube.get(API_VERSION, "PipelineRun", "r1", namespace)["status"]["phase"] == "Running"
    with operator_process(namespace, log):
        try:
            obj = finished(kube, namespace, "r1")
        except AssertionError as err:
            run = kube.get(API_VERSION, "PipelineRun", "r1", namespace) or {}
            raise AssertionError(f"{run.get('status')}\n{log.read_text()[-4000:]}") from err
    output = log.read_text(errors="replace")[-3000:]
    assert obj["status"]["phase"] == "Succeeded", (obj["status"], output)
    assert sorted(jobs_of(kube, namespace)) == ["r1-first-a1", "r1-second-a1"]
    steps = steps_of(obj)
    assert steps["first"]["attempts"] == 1 and steps["second"]["attempts"] == 1
    started = [e for e in kube.list("v1", "Event", namespace) if e.get("reason") == "StepStarted"]
    # Events are best effort (the killed process may not have posted its last one); a
    # restarted operator that started a step again would add a third.
    assert 1 <= sum(e.get("count", 1) for e in started) <= 2
    assert json.loads(json.dumps(steps["second"]["outputs"]))[0]["digest"].startswith("sha256:")
