"""The settings one BatchJob runs with: its endpoint deployment with the job's overrides applied.

Resolved once, purely, so the Job builder, the state machine and the status all read the same
numbers (a job's `errorThreshold` is the override when given, else the deployment's), and the
output location rule of docs/batch-endpoints.md §1 (spec.output, else the operator's batch
output store + `<namespace>/<job>/`) lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlkube.api.batch import BatchDeployment, BatchEndpointSpec, BatchOutputSettings
from mlkube.api.batch_job import BatchJobSpec


@dataclass(frozen=True)
class BatchSettings:
    """Effective settings of one job (deployment defaults, then the job's overrides)."""

    deployment: str
    model: str
    mini_batch_size: str
    instance_count: int
    concurrency: int
    error_threshold: int
    max_retries: int
    timeout_seconds: int
    output: BatchOutputSettings
    entrypoint: str | None
    resources: dict[str, Any]
    env: tuple[tuple[str, str], ...]
    logging_level: str
    # The scoring script's functions (BatchEntrypoint), used only with an entrypoint.
    init_function: str = "init"
    run_function: str = "run"
    environment: str | None = None  # the deployment's Environment reference (name:version)


class SettingsProblem(ValueError):
    """The job names a deployment the endpoint does not have (or no default exists)."""


def pick_deployment(endpoint: BatchEndpointSpec, name: str | None) -> BatchDeployment:
    wanted = name or endpoint.default_deployment
    if wanted is None:
        if len(endpoint.deployments) == 1:
            return endpoint.deployments[0]
        raise SettingsProblem(
            "the BatchJob names no deployment and the endpoint has no defaultDeployment"
        )
    for dep in endpoint.deployments:
        if dep.name == wanted:
            return dep
    raise SettingsProblem(f"the endpoint has no deployment {wanted!r}")


def resolve_settings(endpoint: BatchEndpointSpec, job: BatchJobSpec) -> BatchSettings:
    dep = pick_deployment(endpoint, job.deployment)
    over = job.overrides
    retry = (over.retry_settings if over else None) or dep.retry_settings

    def pick(field: str) -> Any:
        value = getattr(over, field) if over is not None else None
        return getattr(dep, field) if value is None else value

    resources: dict[str, Any] = {}
    if dep.resources is not None:
        for key in ("requests", "limits"):
            values = getattr(dep.resources, key)
            if values:
                resources[key] = {k: str(v) for k, v in values.items()}
    return BatchSettings(
        deployment=dep.name,
        model=dep.model,
        mini_batch_size=str(pick("mini_batch_size")),
        instance_count=int(pick("instance_count")),
        concurrency=int(pick("max_concurrency_per_instance")),
        error_threshold=int(pick("error_threshold")),
        max_retries=retry.max_retries,
        timeout_seconds=retry.timeout_seconds,
        output=pick("output"),
        entrypoint=dep.entrypoint.path if dep.entrypoint else None,
        resources=resources,
        env=tuple((e.name, e.value) for e in dep.env),
        logging_level=dep.logging_level,
        init_function=dep.entrypoint.init_function if dep.entrypoint else "init",
        run_function=dep.entrypoint.run_function if dep.entrypoint else "run",
        environment=dep.environment,
    )


def output_uri(job: BatchJobSpec, namespace: str, name: str, store: str | None) -> str | None:
    """spec.output, else `<store>/<namespace>/<name>/`; None when neither is set."""
    if job.output is not None:
        return job.output.uri
    if not store:
        return None
    return f"{store.rstrip('/')}/{namespace}/{name}/"
