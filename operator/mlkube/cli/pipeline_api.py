"""The pipeline verbs' API access: Pipelines, PipelineRuns, a run's snapshot and its step pods.

API errors become one-line CliErrors through the batch verbs' `api_error` (a missing CRD says
what to install, the API server's CEL messages are shown as they are); pod logs are read the
way `mlkube batch jobs logs` reads them.
"""

from __future__ import annotations

import json
from typing import Any, Final

from mlkube.cli import batch_api
from mlkube.cli.batch_api import api_error
from mlkube.cli.batch_api import create as create  # re-exported for the verbs
from mlkube.cli.batch_api import pod_logs as pod_logs
from mlkube.contract import (
    API_VERSION,
    KIND_PIPELINE,
    KIND_PIPELINE_RUN,
    LABEL_PIPELINE_RUN,
    LABEL_PIPELINE_STEP,
)
from mlkube.k8s import ApiError, Kube

FIELD_MANAGER: Final = "mlkube-cli"
SNAPSHOT_KEY: Final = "pipeline.json"  # controllers/pipeline_snapshot.py: ConfigMap <run>-spec


def get_object(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any]:
    verb = "list" if kind == KIND_PIPELINE else "runs list"
    return batch_api.get_object(kube, kind, namespace, name, f"see `mlkube pipeline {verb}`")


def get_pipeline(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return get_object(kube, KIND_PIPELINE, namespace, name)


def get_run(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return get_object(kube, KIND_PIPELINE_RUN, namespace, name)


def find_run(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.get(API_VERSION, KIND_PIPELINE_RUN, name, namespace)
    except ApiError as err:
        raise api_error(err, f"get PipelineRun {namespace}/{name}", KIND_PIPELINE_RUN) from err


def list_objects(kube: Kube, kind: str, namespace: str | None) -> list[dict[str, Any]]:
    where = f"in {namespace}" if namespace else "in all namespaces"
    try:
        return kube.list(API_VERSION, kind, namespace)
    except ApiError as err:
        raise api_error(err, f"list {kind}s {where}", kind) from err


def patch_run(kube: Kube, namespace: str, name: str, patch: dict[str, Any]) -> None:
    try:
        kube.patch(API_VERSION, KIND_PIPELINE_RUN, name, patch, namespace,
                   field_manager=FIELD_MANAGER)  # fmt: skip
    except ApiError as err:
        raise api_error(err, f"change PipelineRun {namespace}/{name}", KIND_PIPELINE_RUN) from err


def delete_object(kube: Kube, kind: str, namespace: str, name: str) -> bool:
    try:
        return kube.delete(API_VERSION, kind, name, namespace)
    except ApiError as err:
        raise api_error(err, f"delete {kind} {namespace}/{name}", kind) from err


def run_spec_snapshot(kube: Kube, namespace: str, run: str) -> dict[str, Any] | None:
    """The Pipeline spec the run executes (its snapshot ConfigMap), None before it exists."""
    try:
        found = kube.get("v1", "ConfigMap", f"{run}-spec", namespace)
    except ApiError:
        return None  # a reader without ConfigMap rights still gets the live Pipeline's view
    text = ((found or {}).get("data") or {}).get(SNAPSHOT_KEY)
    try:
        spec = json.loads(text) if text else None
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def step_pods(kube: Kube, namespace: str, run: str, step: str | None) -> list[dict[str, Any]]:
    selector = f"{LABEL_PIPELINE_RUN}={run}"
    if step:
        selector += f",{LABEL_PIPELINE_STEP}={step}"
    try:
        return kube.list("v1", "Pod", namespace, selector)
    except ApiError as err:
        raise api_error(err, f"list the step pods of PipelineRun {namespace}/{run}", "Pod") from err
