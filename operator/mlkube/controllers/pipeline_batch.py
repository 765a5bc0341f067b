"""The `batch` built-in step: run BatchJob `<run>-<step>` and wait for a terminal phase.

The name is deterministic and the job is owned by the run (controller reference), so a second
call finds the job it created (create → 409 → adopt when the owner uid is this run's) and
deleting the run deletes its job. A job of that name owned by anyone else is never adopted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.builders.names import dns_name
from mlkube.builders.pipeline_outcome import (
    BuiltinOutcome,
    Done,
    Failed,
    StepOutput,
    StepResult,
    Waiting,
)
from mlkube.contract import (
    API_VERSION,
    KIND_BATCH_JOB,
    KIND_PIPELINE_RUN,
    LABEL_MANAGED_BY,
    LABEL_PIPELINE_RUN,
    LABEL_PIPELINE_STEP,
    MANAGED_BY,
)
from mlkube.controllers.kube import ApiError, Kube

POLL_SECONDS: Final = 10.0


def job_name(run: str, step: str) -> str:
    return dns_name(run, step)


def _input(
    config: Mapping[str, Any], upstream: Mapping[str, StepResult]
) -> dict[str, Any] | Failed:
    source = config.get("input") or {}
    ref = source.get("fromStep")
    if ref:
        result = upstream.get(str(ref.get("step")))
        output = result.outputs.get(str(ref.get("output"))) if result else None
        if output is None or not output.uri:
            return Failed(f"step {ref.get('step')} has no artifact output {ref.get('output')}",
                          "InputMissing")  # fmt: skip
        uri, kind = output.uri, "folder"  # artifact outputs are directories
    else:
        uri = str(source.get("uri"))
        last = uri.rstrip("/").rpartition("/")[2]
        kind = "file" if not uri.endswith("/") and "." in last else "folder"
    batch_input: dict[str, Any] = {"uri": uri, "type": kind}
    if source.get("format"):
        batch_input["format"] = source["format"]
    return batch_input


def _body(
    run: Mapping[str, Any], step: Mapping[str, Any], batch_input: dict[str, Any]
) -> dict[str, Any]:
    meta = run.get("metadata") or {}
    config = step.get("batch") or {}
    spec: dict[str, Any] = {"endpoint": config.get("endpoint"), "input": batch_input}
    if config.get("deployment"):
        spec["deployment"] = config["deployment"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_BATCH_JOB,
        "metadata": {
            "name": job_name(str(meta.get("name")), str(step.get("name"))),
            "namespace": meta.get("namespace"),
            "labels": {
                LABEL_PIPELINE_RUN: str(meta.get("name")),
                LABEL_PIPELINE_STEP: str(step.get("name")),
                LABEL_MANAGED_BY: MANAGED_BY,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND_PIPELINE_RUN,
                    "name": meta.get("name"),
                    "uid": meta.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def batch(
    kube: Kube,
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    upstream: Mapping[str, StepResult],
) -> BuiltinOutcome:
    meta = run.get("metadata") or {}
    namespace, uid = str(meta.get("namespace") or "default"), str(meta.get("uid") or "")
    name = job_name(str(meta.get("name")), str(step.get("name")))
    job = kube.get(API_VERSION, KIND_BATCH_JOB, name, namespace)
    if job is None:
        batch_input = _input(step.get("batch") or {}, upstream)
        if isinstance(batch_input, Failed):
            return batch_input
        try:
            job = kube.create(_body(run, step, batch_input))
        except ApiError as err:
            if err.status == 422:
                return Failed(f"BatchJob {name} refused: {err}", "Invalid")
            if err.status != 409:
                raise
            job = kube.get(API_VERSION, KIND_BATCH_JOB, name, namespace)
            if job is None:
                return Waiting(f"BatchJob {name} was just deleted; creating it again", 1.0)
    if not _owned_by(job, uid):
        return Failed(f"BatchJob {name} exists and belongs to someone else", "NameConflict")
    return _verdict(job)


def _verdict(job: Mapping[str, Any]) -> BuiltinOutcome:
    name = str((job.get("metadata") or {}).get("name"))
    status = job.get("status") or {}
    phase = status.get("phase") or "Pending"
    items = status.get("items") or {}
    if phase == "Succeeded":
        return Done(
            f"BatchJob {name} succeeded: {items.get('succeeded', 0)} items scored,"
            f" {items.get('failed', 0)} failed; output {status.get('outputUri')}",
            outputs=(StepOutput("output", "artifact", uri=status.get("outputUri")),),
            metrics={
                "itemsSucceeded": float(items.get("succeeded", 0)),
                "itemsFailed": float(items.get("failed", 0)),
            },
        )
    if phase in ("Failed", "Cancelled"):
        return Failed(f"BatchJob {name} {phase.lower()}: {status.get('message') or ''}",
                      "BatchJobFailed")  # fmt: skip
    progress = f" ({status.get('progress', 0)}%)" if phase == "Running" else ""
    return Waiting(f"BatchJob {name} is {phase}{progress}", POLL_SECONDS)
