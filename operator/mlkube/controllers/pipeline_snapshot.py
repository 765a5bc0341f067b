"""The Pipeline spec a run executes, frozen at its start (docs/pipelines.md §1, "The snapshot").

The first reconcile of a run copies the Pipeline's spec (canonical JSON) into an immutable
ConfigMap `<run>-spec` owned by the run; every later reconcile reads that copy, never the live
Pipeline, so editing a Pipeline never changes a run in flight and a run stays reproducible.
Creation is POST-only: a 409 means an earlier pass (or another operator) made it, and the
existing copy wins. A ConfigMap of that name the run does not own is never used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from mlkube import contract as c
from mlkube.builders.names import label_value
from mlkube.builders.pipeline_step import RunRef, owner_reference
from mlkube.controllers.kube import ApiError, Kube

DATA_KEY: Final = "pipeline.json"
KIND_PIPELINE: Final = "Pipeline"
# The API server refuses a ConfigMap whose values pass 1 MiB; a Pipeline object may be larger
# (etcd's ~1.5 MiB request limit), and that refusal would fail every pass of the run for ever.
MAX_SNAPSHOT_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    spec: dict[str, Any] | None
    digest: str = ""
    problem: str | None = None  # why the run cannot start (then spec is None)


def snapshot_name(run: str) -> str:
    return f"{run}-spec"


def canonical(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _read(obj: dict[str, Any], uid: str) -> Snapshot:
    refs = [r for r in (obj.get("metadata") or {}).get("ownerReferences") or []
            if r.get("controller")]  # fmt: skip
    name = (obj.get("metadata") or {}).get("name")
    if not refs or refs[0].get("uid") != uid:
        return Snapshot(None, problem=f"ConfigMap {name} exists and is not this run's snapshot")
    text = str((obj.get("data") or {}).get(DATA_KEY) or "")
    try:
        spec = json.loads(text)
    except ValueError:
        return Snapshot(None, problem=f"ConfigMap {name} does not hold a pipeline spec")
    return Snapshot(spec, digest_of(text))


def manifest(run: RunRef, pipeline: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": snapshot_name(run.name),
            "namespace": run.namespace,
            "labels": {
                c.LABEL_MANAGED_BY: c.MANAGED_BY,
                c.LABEL_PIPELINE_RUN: label_value(run.name),
            },
            "annotations": {"mlkube.dev/pipeline": pipeline},
            "ownerReferences": [owner_reference(run)],
        },
        "immutable": True,
        "data": {DATA_KEY: text},
    }


def ensure_snapshot(kube: Kube, run: RunRef, pipeline: str, field_manager: str) -> Snapshot:
    """The run's snapshot, made from the live Pipeline when it does not exist yet."""
    existing = kube.get("v1", "ConfigMap", snapshot_name(run.name), run.namespace)
    if existing is not None:
        return _read(existing, run.uid)
    live = kube.get(c.API_VERSION, KIND_PIPELINE, pipeline, run.namespace)
    if live is None:
        return Snapshot(None, problem=f"Pipeline {pipeline} does not exist")
    text = canonical(live.get("spec") or {})
    size = len(text.encode())
    if size > MAX_SNAPSHOT_BYTES:
        return Snapshot(
            None,
            problem=f"Pipeline {pipeline} spec is {size} bytes as JSON; a run "
            f"snapshots it in a ConfigMap, which holds at most {MAX_SNAPSHOT_BYTES}",
        )
    try:
        kube.create(manifest(run, pipeline, text), field_manager=field_manager)
    except ApiError as err:
        if err.status != 409:
            raise
        again = kube.get("v1", "ConfigMap", snapshot_name(run.name), run.namespace)
        if again is None:
            raise
        return _read(again, run.uid)
    return Snapshot(json.loads(text), digest_of(text))
