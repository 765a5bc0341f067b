"""The `registerModel` built-in step: create the Model with lineage, wait until it is verified.

Level-based and race-safe. Each call first looks for the Model this run's step registered
before (annotation with the run uid): found → only its phase matters. Otherwise it picks the
version (`auto` = one more than the highest integer version of modelName, re-read on every
attempt) and creates `<modelName>-v<version>`; a 409 means someone else (another run, a
person with the CLI) took that version, so it reads again and takes the next one. The Model
is ownerless: deleting the run keeps the model it registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.model import ModelSpec
from mlkube.builders.names import label_value
from mlkube.builders.pipeline_lineage import LineageError, build_lineage, run_parameters
from mlkube.builders.pipeline_outcome import (
    BuiltinOutcome,
    Done,
    Failed,
    StepOutput,
    StepResult,
    Waiting,
)
from mlkube.builders.pipeline_register import (
    ANNOTATION_RUN_UID,
    AUTO,
    TemplateError,
    build_model,
    model_object_name,
    next_version,
    own_model,
    render,
)
from mlkube.contract import API_VERSION, KIND_MODEL, LABEL_PIPELINE_RUN
from mlkube.controllers.kube import ApiError, Kube

CREATE_ATTEMPTS: Final = 5
VERIFY_POLL_SECONDS: Final = 2.0


def register_model(
    kube: Kube,
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    upstream: Mapping[str, StepResult],
) -> BuiltinOutcome:
    meta = run.get("metadata") or {}
    namespace, run_uid = str(meta.get("namespace") or "default"), str(meta.get("uid") or "")
    config = step.get("registerModel") or {}
    model_name = str(config.get("modelName") or "")
    step_name = str(step.get("name"))
    # The run's own Models by label first (cheap while waiting for verification), then all:
    # a removed label must not lead to a second Model.
    selector = f"{LABEL_PIPELINE_RUN}={label_value(str(meta.get('name')))}"
    mine = own_model(kube.list(API_VERSION, KIND_MODEL, namespace, selector), model_name, run_uid,
                     step_name)  # fmt: skip
    models: list[dict[str, Any]] = []
    if mine is None:
        models = kube.list(API_VERSION, KIND_MODEL, namespace)
        mine = own_model(models, model_name, run_uid, step_name)
    if mine is None:
        created = _create(kube, run, step, upstream, models)
        if not isinstance(created, Mapping):
            return created
        mine = created
    return _verdict(mine)


def _artifact(step: Mapping[str, Any], upstream: Mapping[str, StepResult]) -> dict[str, str]:
    ref = (step.get("registerModel") or {}).get("artifact") or {}
    source, output = str(ref.get("step") or ""), str(ref.get("output") or "")
    result = upstream.get(source)
    if result is None or result.phase != "Succeeded":
        raise LineageError(f"artifact step {source!r} has not succeeded")
    found = result.outputs.get(output)
    if found is None or found.type != "artifact" or not found.uri:
        raise LineageError(f"step {source} has no artifact output {output!r}")
    artifact = {"uri": found.uri}
    if found.digest:
        artifact["digest"] = found.digest
    return artifact


def _model_artifacts(models: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """Model name → (artifact uri, verified digest else declared), for Model inputs."""
    known = {}
    for obj in models:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        uri = (spec.get("artifact") or {}).get("uri")
        if uri:
            digest = (status.get("artifact") or {}).get("digest") or spec["artifact"].get("digest")
            known[str(obj["metadata"]["name"])] = (str(uri), digest)
    return known


def _create(
    kube: Kube,
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    upstream: Mapping[str, StepResult],
    models: list[dict[str, Any]],
) -> Mapping[str, Any] | BuiltinOutcome:
    meta = run.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    run_name, run_uid = str(meta.get("name")), str(meta.get("uid") or "")
    config = step.get("registerModel") or {}
    model_name = str(config.get("modelName") or "")
    try:
        artifact = _artifact(step, upstream)
        lineage = build_lineage(run, step, upstream, _model_artifacts(models))
        wanted = str(config.get("version") or AUTO)
        fixed = None
        if wanted != AUTO:
            fixed = render(wanted, run_parameters(run), run_name, run_uid)
    except (LineageError, TemplateError) as err:
        return Failed(f"registerModel {step.get('name')}: {err}", "InvalidStep")
    for _ in range(CREATE_ATTEMPTS):
        version = fixed or next_version(
            str((m.get("spec") or {}).get("version") or "")
            for m in models
            if (m.get("spec") or {}).get("modelName") == model_name
        )
        body = build_model(
            namespace=namespace, run_name=run_name, run_uid=run_uid, step=step,
            version=version, artifact=artifact, lineage=lineage,
        )  # fmt: skip
        try:
            ModelSpec.model_validate(body["spec"])
        except ValidationError as err:
            return Failed(f"registerModel {step.get('name')}: invalid Model: {err}", "ModelInvalid")
        try:
            return kube.create(body)
        except ApiError as err:
            if err.status == 422:
                return Failed(f"Model {body['metadata']['name']} refused: {err}", "ModelInvalid")
            if err.status != 409:
                raise
        taken = kube.get(API_VERSION, KIND_MODEL, model_object_name(model_name, version), namespace)
        notes = ((taken or {}).get("metadata") or {}).get("annotations") or {}
        if taken is not None and notes.get(ANNOTATION_RUN_UID) == run_uid:
            return taken  # an earlier call of this very run created it
        if fixed is not None:
            return Failed(
                f"Model {model_name} version {fixed} already exists "
                f"({model_object_name(model_name, fixed)}); versions are immutable",
                "VersionExists",
            )
        models = kube.list(API_VERSION, KIND_MODEL, namespace)  # someone took it: look again
    return Waiting(f"versions of {model_name} keep being taken; trying again", 1.0)


def _verdict(model: Mapping[str, Any]) -> BuiltinOutcome:
    name = str((model.get("metadata") or {}).get("name"))
    spec, status = model.get("spec") or {}, model.get("status") or {}
    phase = status.get("phase")
    if phase == "Ready":
        verified = (status.get("artifact") or {}).get("digest")
        return Done(
            f"registered Model {name} ({spec.get('modelName')} version {spec.get('version')}),"
            f" verified {verified}",
            outputs=(
                StepOutput("model", "parameter", value=name),
                StepOutput("version", "parameter", value=str(spec.get("version"))),
            ),
            produced_models=(name,),
        )
    if phase == "Failed":
        return Failed(
            f"Model {name} failed verification: {status.get('message') or ''}", "ModelFailed"
        )
    return Waiting(
        f"Model {name} is {phase or 'Pending'}: waiting for verification", VERIFY_POLL_SECONDS
    )
