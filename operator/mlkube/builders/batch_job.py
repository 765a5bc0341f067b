"""The three Jobs of a BatchJob: plan (one pod), score (an Indexed Job) and merge.

Pure manifests (docs/batch-endpoints.md §3, contract C1 of issue 11). Names are deterministic
(`<job>-<step>-<hash of job, step and uid>`) and the Jobs are created with POST only, so a
restarted operator finds its Jobs instead of starting a second run, and a BatchJob recreated
under the same name never adopts the old object's Jobs while they are garbage-collected.
Every pod runs the serving image as `python -m mlkube_serving batch <step>` under the
restricted profile, without API credentials; storage credentials come only from the storage
Secret. The score pods first run the storage initializer, which refuses any model bytes but
the digest the Model recorded.
"""

from __future__ import annotations

from typing import Any

from mlkube import contract as c
from mlkube.builders.batch_pods import (
    CONTAINER,
    MODEL_VOLUME,
    PLAN_BACKOFF,
    BatchJobRef,
    ScoreShape,
    Step,
    claims_of,
    failure_policy,
    job_labels,
    owner_reference,
    pod_template,
    scorer_container,
    step_job_name,
    work_path,
)
from mlkube.builders.batch_settings import BatchSettings
from mlkube.builders.endpoint_server import model_volume_limit
from mlkube.builders.environment_use import PACKAGED_MODEL_DIR, EnvironmentUse, apply_environment
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.storage_init import initializer_container

__all__ = [
    "CONTAINER",
    "BatchJobRef",
    "ScoreShape",
    "Step",
    "build_merge_job",
    "build_plan_job",
    "build_score_job",
    "step_job_name",
    "work_path",
]


def _job(owner: BatchJobRef, step: Step, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": step_job_name(owner.name, step, owner.uid),
            "namespace": owner.namespace,
            "labels": job_labels(owner),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


def _score_args(settings: BatchSettings, model: ModelFacts) -> list[str]:
    """Arguments that enter the scorer's settings digest: `work` and `score` must agree."""
    args = ["--model-digest", model.digest, "--output-format", settings.output.format]
    if model.framework:
        args += ["--framework", model.framework]
    if settings.entrypoint:
        args += ["--entrypoint", settings.entrypoint]
        args += ["--init-function", settings.init_function]
        args += ["--run-function", settings.run_function]
    return args


def build_plan_job(
    owner: BatchJobRef,
    *,
    input_uri: str,
    input_format: str,
    output: str,
    settings: BatchSettings,
    model: ModelFacts,
    config: OperatorConfig,
    resume: bool = False,
) -> dict[str, Any]:
    """One pod: `batch plan` lists the input; for resumeFrom, `batch work` writes the work list
    over the source's plan instead (the input is never listed twice, §6)."""
    if resume:
        step_args = ["work", "--output", output, "--job", owner.name, *_score_args(settings, model)]
    else:
        step_args = [
            "plan",
            "--input",
            input_uri,
            "--output",
            output,
            "--mini-batch-size",
            settings.mini_batch_size,
            "--format",
            input_format,
        ]
    container = scorer_container("plan", [], settings, config)
    container["command"] = ["python", "-m", "mlkube_serving", "batch", *step_args]
    claims = claims_of([(input_uri, True), (output, False)])
    template = pod_template(owner, "plan", [container], claims, config)
    return _job(
        owner,
        "plan",
        {"backoffLimit": PLAN_BACKOFF, "podFailurePolicy": failure_policy(), "template": template},
    )


def build_score_job(
    owner: BatchJobRef,
    *,
    output: str,
    shape: ScoreShape,
    settings: BatchSettings,
    model: ModelFacts,
    config: OperatorConfig,
    suspend: bool = False,
    environment: EnvironmentUse | None = None,
) -> dict[str, Any]:
    """The Indexed Job: index i scores shard i of the plan (or of the resume work list).
    With `environment` the scorer runs on its image; one that packages the model scores the
    baked-in copy (no storage initializer, no model volume)."""
    packaged = environment is not None and environment.packages(model.name, model.digest)
    args = [
        "--output",
        output,
        "--model",
        PACKAGED_MODEL_DIR if packaged else c.MODEL_DIR,
        "--indexes",
        str(shape.indexes),
        "--plan-digest",
        shape.plan_digest,
        "--concurrency",
        str(settings.concurrency),
        "--timeout",
        str(settings.timeout_seconds),
        "--max-retries",
        str(settings.max_retries),
        "--error-threshold",
        str(settings.error_threshold),
        *_score_args(settings, model),
    ]
    if shape.work:
        args += ["--work", shape.work]
    container = scorer_container("score", args, settings, config, sized=True)
    container["volumeMounts"].append(
        {"name": MODEL_VOLUME, "mountPath": c.MODEL_DIR, "readOnly": True}
    )
    init = initializer_container(
        name="storage-initializer",
        uri=model.uri,
        digest=model.digest,
        volume=MODEL_VOLUME,
        dest=c.MODEL_DIR,
        config=config,
        resources=settings.resources,
    )
    # A packaged model's claim is not needed (nor, on an air-gapped cluster, there at all).
    claims = claims_of([*([] if packaged else [(model.uri, True)]), (output, False)])
    template = pod_template(
        owner,
        "score",
        [container],
        claims,
        config,
        init=[init],
        model_limit=model_volume_limit(model),
    )
    if environment is not None:
        apply_environment(
            template["spec"],
            environment,
            containers=[CONTAINER],
            pull_secret=config.build.image_pull_secret,
            packaged=packaged,
            model_volume=MODEL_VOLUME,
        )
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": shape.indexes,
        "parallelism": max(1, min(settings.instance_count, shape.indexes)),
        "backoffLimitPerIndex": settings.max_retries,
        "podFailurePolicy": failure_policy(),
        "suspend": suspend,
        "template": template,
    }
    return _job(owner, "score", spec)


def build_merge_job(
    owner: BatchJobRef, *, output: str, settings: BatchSettings, config: OperatorConfig
) -> dict[str, Any]:
    """One pod: merge the verified parts into `fileName` and write the manifest."""
    out = settings.output
    args = [
        "--output",
        output,
        "--file-name",
        out.file_name,
        "--output-format",
        out.format,
        "--action",
        out.action,
    ]
    container = scorer_container("merge", args, settings, config)
    template = pod_template(owner, "merge", [container], claims_of([(output, False)]), config)
    return _job(
        owner,
        "merge",
        {"backoffLimit": PLAN_BACKOFF, "podFailurePolicy": failure_policy(), "template": template},
    )
