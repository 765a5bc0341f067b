"""A fake cluster and a file:// artifact store for PipelineRun controller tests: Pipelines,
runs, and step Jobs finished the way the Job controller and the step pod would finish them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import pipeline_run as controller
from mlkube.storage.transfer import compute_digest
from support.fake_kube import FakeKube

NS = "ml"
API = "mlkube.dev/v1alpha1"
IMAGE = "trainer@sha256:" + "e" * 64
NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def step(name: str, *, inputs: list[dict[str, Any]] | None = None,
         outputs: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name,
        "image": IMAGE,
        "command": ["python", f"{name}.py"],
        "inputs": inputs or [],
        "outputs": outputs if outputs is not None else [{"name": "out"}],
        **extra,
    }


def three_steps() -> list[dict[str, Any]]:
    """prep → train → score, each passing its artifact on."""
    return [
        step("prep"),
        step("train", inputs=[{"name": "data", "fromStep": {"step": "prep", "output": "out"}}],
             outputs=[{"name": "out"}, {"name": "auc", "type": "metrics"}]),
        step("score", inputs=[{"name": "model", "fromStep": {"step": "train", "output": "out"}}]),
    ]  # fmt: skip


def cluster(steps: list[dict[str, Any]], **pipeline: Any) -> FakeKube:
    kube = FakeKube()
    kube.put(
        {
            "apiVersion": API,
            "kind": "Pipeline",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"steps": steps, **pipeline},
        }
    )
    return kube  # fmt: skip


def add_run(kube: FakeKube, name: str, **spec: Any) -> dict[str, Any]:
    return kube.put({"apiVersion": API, "kind": "PipelineRun",
                     "metadata": {"name": name, "namespace": NS},
                     "spec": {"pipeline": "p", **spec}})  # fmt: skip


def config(tmp_path: Path) -> OperatorConfig:
    return OperatorConfig(allow_file_artifacts=True, artifact_store=(tmp_path / "store").as_uri())


def reconcile(kube: FakeKube, cfg: OperatorConfig, run: str, minutes: float = 0) -> Any:
    now = NOW + datetime.timedelta(minutes=minutes)
    return controller.reconcile(kube, cfg, NS, run, now)


def status(kube: FakeKube, run: str) -> dict[str, Any]:
    return dict(kube.stored(API, "PipelineRun", run, NS).get("status") or {})


def step_status(kube: FakeKube, run: str, name: str) -> dict[str, Any]:
    return next(s for s in status(kube, run).get("steps") or [] if s["name"] == name)


def jobs(kube: FakeKube) -> list[str]:
    return sorted(k[3] for k in kube.objects if k[1] == "Job")


def job(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.stored("batch/v1", "Job", name, NS)


def manifest(kube: FakeKube, name: str) -> dict[str, Any]:
    init = job(kube, name)["spec"]["template"]["spec"]["initContainers"][0]
    return dict(json.loads(next(e["value"] for e in init["env"] if e["name"] == "MLKUBE_STEP")))


def _pod(kube: FakeKube, job_name: str, outputs_state: dict[str, Any],
         main_state: dict[str, Any]) -> None:  # fmt: skip
    kube.put({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": f"{job_name}-x1", "namespace": NS,
                           "labels": {"job-name": job_name},
                           "creationTimestamp": "2026-01-01T12:00:00Z"},
              "status": {"containerStatuses": [
                  {"name": "main", "state": {"terminated": main_state},
                   "imageID": "docker.io/library/trainer@sha256:" + "e" * 64},
                  {"name": "outputs", "state": {"terminated": outputs_state}}]}})  # fmt: skip


def _condition(kube: FakeKube, job_name: str, type_: str) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["status"] = {"conditions": [{"type": type_, "status": "True"}]}

    kube.mutate(("batch/v1", "Job", NS, job_name), change)


def succeed(kube: FakeKube, job_name: str, files: dict[str, bytes] | None = None,
            metrics: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """The step pod uploads its artifact outputs under the attempt prefix (as `outputs`
    does), reports the summary as its termination message, and the Job completes."""
    m = manifest(kube, job_name)
    summary: dict[str, Any] = {"exitCode": 0, "outputs": []}
    for out in m["outputs"]:
        if out["type"] == "metrics":
            summary["outputs"].append({"name": out["name"], "type": "metrics",
                                       "metrics": metrics or {"auc": 0.9}})  # fmt: skip
            continue
        uri = f"{m['prefix']}/outputs/{out['name']}"
        folder = Path(uri.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        for rel, data in (files or {"part.txt": f"{job_name}".encode()}).items():
            (folder / rel).write_bytes(data)
        facts = compute_digest(uri)
        summary["outputs"].append({"name": out["name"], "type": "artifact", "uri": uri,
                                   "digest": facts.digest, "size": facts.size,
                                   "fileCount": facts.file_count})  # fmt: skip
    _pod(kube, job_name, {"exitCode": 0, "message": json.dumps(summary)}, {"exitCode": 0})
    _condition(kube, job_name, "Complete")
    return summary


def fail(kube: FakeKube, job_name: str, message: str = "Traceback: boom") -> None:
    _pod(kube, job_name, {"exitCode": 0}, {"exitCode": 3, "message": message})
    _condition(kube, job_name, "Failed")
