"""Pure: a BatchJob (+ its endpoint's deployment and Model) -> the scorer steps, as local argv.

`mlkube batch run-local` runs exactly the programs a job's pods run (`python -m mlkube_serving
batch plan|score|merge`, docs/batch-endpoints.md §10) with the settings the operator would
give them: the deployment's, overridden by the job's, Azure ML's defaults for the rest. As for
endpoint run-local, only allow-listed env vars from the spec reach local processes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlkube.api.batch import BatchDeployment
from mlkube.api.batch_job import BatchJobOverrides
from mlkube.localrun.plan import env_allowed

# A stand-in Model name when the deployment comes from defaults (run-local -f --model PATH).
LOCAL_MODEL = "local"


@dataclass(frozen=True)
class BatchRun:
    """Everything the three steps need, resolved."""

    job: str
    input_uri: str
    input_format: str
    output_uri: str
    mini_batch_size: str
    instance_count: int
    concurrency: int
    timeout_seconds: int
    max_retries: int
    error_threshold: int
    action: str
    file_name: str
    output_format: str
    entrypoint: str | None = None
    framework: str | None = None
    model_digest: str = ""
    env: dict[str, str] = field(default_factory=dict)
    dropped_env: tuple[str, ...] = ()


def resolve_run(
    job_name: str,
    job_spec: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    output_uri: str,
    *,
    framework: str | None = None,
    model_digest: str = "",
) -> BatchRun:
    """The job's effective settings: its overrides over the deployment over the defaults."""
    dep = BatchDeployment.model_validate(
        dict(deployment) if deployment else {"name": "default", "model": LOCAL_MODEL}
    )
    over = BatchJobOverrides.model_validate(job_spec.get("overrides") or {})
    retry = over.retry_settings or dep.retry_settings
    output = over.output or dep.output
    size = over.mini_batch_size if over.mini_batch_size is not None else dep.mini_batch_size
    env = {e.name: e.value for e in dep.env}
    source = job_spec.get("input") or {}
    return BatchRun(
        job=job_name,
        input_uri=str(source["uri"]),
        input_format=str(source.get("format") or "auto"),
        output_uri=output_uri.rstrip("/"),
        mini_batch_size=str(size),
        instance_count=over.instance_count or dep.instance_count,
        concurrency=over.max_concurrency_per_instance or dep.max_concurrency_per_instance,
        timeout_seconds=retry.timeout_seconds,
        max_retries=retry.max_retries,
        error_threshold=(
            over.error_threshold if over.error_threshold is not None else dep.error_threshold
        ),
        action=output.action,
        file_name=output.file_name,
        output_format=output.format,
        entrypoint=dep.entrypoint.path if dep.entrypoint else None,
        framework=framework,
        model_digest=model_digest,
        env={k: v for k, v in env.items() if env_allowed(k)}
        | {"MLKUBE_LOG_LEVEL": dep.logging_level.upper()},
        dropped_env=tuple(sorted(k for k in env if not env_allowed(k))),
    )


def _step(step: str) -> list[str]:
    # No termination log on a laptop: the summary is the step's last stdout line.
    return [sys.executable, "-m", "mlkube_serving", "batch", "--termination-log", "", step]


def plan_argv(run: BatchRun) -> list[str]:
    return [*_step("plan"), "--input", run.input_uri, "--output", run.output_uri,
            "--mini-batch-size", run.mini_batch_size, "--format", run.input_format]  # fmt: skip


def score_argv(run: BatchRun, model_dir: str, index: int, indexes: int, digest: str) -> list[str]:
    argv = [
        *_step("score"), "--output", run.output_uri, "--model", model_dir,
        "--index", str(index), "--indexes", str(indexes), "--plan-digest", digest,
        "--concurrency", str(run.concurrency), "--timeout", str(run.timeout_seconds),
        "--max-retries", str(run.max_retries), "--error-threshold", str(run.error_threshold),
        "--output-format", run.output_format, "--model-digest", run.model_digest,
    ]  # fmt: skip
    if run.entrypoint:
        argv += ["--entrypoint", run.entrypoint]
    if run.framework:
        argv += ["--framework", run.framework]
    return argv


def merge_argv(run: BatchRun) -> list[str]:
    return [*_step("merge"), "--output", run.output_uri, "--file-name", run.file_name,
            "--output-format", run.output_format, "--action", run.action]  # fmt: skip
