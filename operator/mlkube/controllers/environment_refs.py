"""Looking up the Environments that deployments, batch jobs and pipeline steps name.

One LIST of the namespace's Environments per reconcile (references may say `name@latest`,
which needs every version anyway); curated references resolve from the operator config and
need no object. The pure half (what counts as Ready, compatible, packaged) lives in
builders/environment_use.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_status import Blocker, is_blocked
from mlkube.builders.environment_use import (
    LATEST,
    EnvironmentProblem,
    EnvironmentUse,
    parse_reference,
    resolve_all,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import (
    API_VERSION,
    KIND_BATCH_ENDPOINT,
    KIND_BATCH_JOB,
    KIND_ENVIRONMENT,
    KIND_ONLINE_ENDPOINT,
    KIND_PIPELINE,
    KIND_PIPELINE_RUN,
)
from mlkube.controllers.kube import ApiError, Kube
from mlkube.environments.curated import is_curated
from mlkube.reconcile.environment_admission import references


def list_environments(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    """The namespace's Environments ([] while the kind is not served: nothing can be Ready)."""
    try:
        return kube.list(API_VERSION, KIND_ENVIRONMENT, namespace)
    except ApiError as err:
        if err.status == 404:
            return []
        raise


def read_environments(
    kube: Kube,
    namespace: str,
    references: Iterable[str],
    config: OperatorConfig,
    *,
    serving: bool = True,
) -> tuple[dict[str, EnvironmentUse], list[EnvironmentProblem]]:
    """reference -> resolved use, and the problems of those that cannot be used (yet)."""
    refs = sorted(set(references))
    if not refs:
        return {}, []
    needs_objects = any(not is_curated(parse_reference(r)[0]) for r in refs)
    objects = list_environments(kube, namespace) if needs_objects else []
    return resolve_all(
        refs, objects, dict(config.build.curated), serving=serving,
        serving_image=config.serving_image,
    )  # fmt: skip


def environment_users(objects: Iterable[dict[str, Any]]) -> set[str]:
    """Environment names (not versions: `@latest` follows new ones) that an endpoint's or a
    pipeline's spec references; what re-queues it when one of them changes."""
    return {parse_reference(r.ref)[0] for obj in objects for r in references("", obj)}


def deployment_environments(
    kube: Kube,
    namespace: str,
    spec: OnlineEndpointSpec,
    config: OperatorConfig,
    status: Mapping[str, Any] | None = None,
    generation: int | None = None,
) -> tuple[dict[str, EnvironmentUse], list[Blocker]]:
    """Deployment name -> the environment it runs on; blockers for those not usable (yet).

    `name@latest` is resolved once per generation (note §1): while the status describes this
    generation, the version it recorded is kept, so a new version does not roll the pods
    until the endpoint's spec changes."""
    pinned = latest_pins(spec.deployments, status, generation)
    refs = {pinned.get(d.name) or d.environment for d in spec.deployments if d.environment}
    uses, problems = read_environments(kube, namespace, refs, config)
    blockers = [Blocker(p.reason, p.message, degraded=p.degraded) for p in problems]
    by_deployment = {}
    for d in spec.deployments:
        ref = pinned.get(d.name) or d.environment
        if ref in uses:
            by_deployment[d.name] = replace(uses[ref], reference=str(d.environment))
    return by_deployment, blockers


def latest_pins(
    deployments: Iterable[Any], status: Mapping[str, Any] | None, generation: int | None
) -> dict[str, str]:
    """Deployment name -> `name:version` its `name@latest` resolved to for this generation."""
    status = status or {}
    if generation is None or status.get("observedGeneration") != generation:
        return {}
    recorded = {
        str(d.get("name")): d.get("environment") or {}
        for d in status.get("deployments") or []
        if isinstance(d, Mapping)
    }
    pins = {}
    for dep in deployments:
        ref = dep.environment
        name, version = parse_reference(ref) if ref else ("", "")
        env = recorded.get(dep.name) or {}
        if version == LATEST and env.get("name") == name and env.get("version"):
            pins[dep.name] = f"{name}:{env['version']}"
    return pins


def waiting_users(kube: Kube, namespace: str, environment: str) -> dict[str, list[str]]:
    """Kind -> names of the OnlineEndpoints, BatchJobs and PipelineRuns that may be waiting for
    the Environment named `environment` (any version: `@latest` follows new ones)."""
    found: dict[str, list[str]] = {}
    endpoints = kube.list(API_VERSION, KIND_ONLINE_ENDPOINT, namespace)
    found[KIND_ONLINE_ENDPOINT] = sorted(
        str(o["metadata"]["name"])
        for o in endpoints
        if environment in environment_users([o]) and is_blocked(o.get("status") or {})
    )
    batch = {
        str(o["metadata"]["name"])
        for o in kube.list(API_VERSION, KIND_BATCH_ENDPOINT, namespace)
        if environment in environment_users([o])
    }
    found[KIND_BATCH_JOB] = sorted(
        str(j["metadata"]["name"])
        for j in kube.list(API_VERSION, KIND_BATCH_JOB, namespace)
        if (j.get("spec") or {}).get("endpoint") in batch
        and (j.get("status") or {}).get("phase") in (None, "Pending")
    )
    pipelines = {
        str(o["metadata"]["name"])
        for o in kube.list(API_VERSION, KIND_PIPELINE, namespace)
        if environment in environment_users([o])
    }
    found[KIND_PIPELINE_RUN] = sorted(
        str(r["metadata"]["name"])
        for r in kube.list(API_VERSION, KIND_PIPELINE_RUN, namespace)
        if (r.get("spec") or {}).get("pipeline") in pipelines
        and (r.get("status") or {}).get("phase") not in ("Succeeded", "Failed", "Cancelled")
    )
    return found
