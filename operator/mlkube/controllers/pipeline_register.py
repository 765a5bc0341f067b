"""The `registerModel` built-in step: create the Model with lineage, wait until it is verified.

Level-based and race-safe. Each call first looks for the Model this run's step registered
before (annotation with the run uid): found → only its phase matters. Otherwise it looks for a
Model that already registers exactly this artifact (same verified digest, framework and
baseline; Ready, not being deleted), e.g. the one an earlier run registered from the same
training output that this run's train step took from the cache: that Model is reused (a cache
hit, no new version), so a rerun does no new work. Otherwise it picks the version (`auto` =
one more than the highest integer version of modelName, re-read on every attempt) and creates
`<modelName>-v<version>`; a 409 means someone else (another run, a person with the CLI) took
that version, so it reads again and takes the next one. An explicit version that exists is
reused when it is the same thing, else the step fails. The Model is ownerless: deleting the
run keeps the model it registered.
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
    CacheNote,
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
    Wanted,
    build_model,
    deleting,
    differences,
    model_object_name,
    next_version,
    own_model,
    render,
    reusable,
    source_run,
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
    found = _artifact_output(upstream, ref, "artifact")
    artifact = {"uri": str(found.uri)}
    if found.digest:
        artifact["digest"] = found.digest
    return artifact


def _artifact_output(
    upstream: Mapping[str, StepResult], ref: Mapping[str, Any], role: str
) -> StepOutput:
    """The artifact output `ref` {step, output} names, of a step that succeeded with it."""
    source, output = str(ref.get("step") or ""), str(ref.get("output") or "")
    result = upstream.get(source)
    if result is None or result.phase != "Succeeded":
        raise LineageError(f"{role} step {source!r} has not succeeded")
    found = result.outputs.get(output)
    if found is None or found.type != "artifact" or not found.uri:
        suffix = "" if role == "artifact" else f" ({role})"
        raise LineageError(f"step {source} has no artifact output {output!r}{suffix}")
    return found


def _baseline(step: Mapping[str, Any], upstream: Mapping[str, StepResult]) -> dict[str, str] | None:
    """spec.baseline {uri, digest} from the `baseline` artifact output, if the step names one.

    The digest is required: the drift init container and the operator refuse a profile they
    cannot verify, so a baseline without one would switch drift monitoring off silently."""
    ref = (step.get("registerModel") or {}).get("baseline")
    if not ref:
        return None
    found = _artifact_output(upstream, ref, "baseline")
    if not found.digest:
        raise LineageError(f"baseline {ref.get('step') or ''}.{ref.get('output') or ''} was "
                           "recorded without a digest")  # fmt: skip
    return {"uri": str(found.uri), "digest": found.digest}


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
        baseline = _baseline(step, upstream)
        asked = str(config.get("version") or AUTO)
        fixed = None
        if asked != AUTO:
            fixed = render(asked, run_parameters(run), run_name, run_uid)
        wanted = Wanted(model_name, str(config.get("framework") or ""), artifact.get("digest"),
                        (baseline or {}).get("digest"))  # fmt: skip
        # Reuse first: an equal Model needs no lineage (it has its own, from its run).
        if fixed is None:
            same = reusable(models, wanted)
            if same is not None:
                return _reused(same)
        else:
            name = model_object_name(model_name, fixed)
            taken = kube.get(API_VERSION, KIND_MODEL, name, namespace)
            if taken is not None:
                return _taken(taken, wanted, fixed, run_uid)
        lineage = build_lineage(run, step, upstream, _model_artifacts(models))
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
            version=version, artifact=artifact, lineage=lineage, baseline=baseline,
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
            return (
                _taken(taken, wanted, fixed, run_uid)
                if taken
                else Waiting(
                    f"Model {body['metadata']['name']} is being replaced; trying again", 1.0
                )
            )
        models = kube.list(API_VERSION, KIND_MODEL, namespace)  # someone took it: look again
        same = reusable(models, wanted)  # a concurrent run registered this very artifact
        if same is not None:
            return _reused(same)
    return Waiting(f"versions of {model_name} keep being taken; trying again", 1.0)


def _taken(
    model: Mapping[str, Any], wanted: Wanted, version: str, run_uid: str
) -> Mapping[str, Any] | BuiltinOutcome:
    """An explicit version that exists: ours (adopt), the same thing (reuse) or a conflict."""
    name = str((model.get("metadata") or {}).get("name"))
    if ((model.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RUN_UID) == run_uid:
        return model
    if deleting(model):
        return Waiting(f"Model {name} is being deleted; registering version {version} once it is"
                       " gone", VERIFY_POLL_SECONDS)  # fmt: skip
    diffs = differences(model, wanted)
    if diffs:
        return Failed(
            f"Model {wanted.model_name} version {version} already exists ({name}) and registers"
            f" something else: {'; '.join(diffs)}. Versions are immutable: use version auto or"
            " another version",
            "VersionExists",
        )
    phase = (model.get("status") or {}).get("phase")
    if phase == "Ready":
        return _reused(model)
    if phase == "Failed":
        return Failed(
            f"Model {name} (version {version}) exists and failed verification: "
            f"{(model.get('status') or {}).get('message') or ''}",
            "VersionExists",
        )
    return Waiting(f"Model {name} registers this artifact and is {phase or 'Pending'}: waiting"
                   " for its verification", VERIFY_POLL_SECONDS)  # fmt: skip


def _reused(model: Mapping[str, Any]) -> Done:
    """Done without registering: `model` already registers exactly this (a cache hit)."""
    name = str((model.get("metadata") or {}).get("name"))
    spec = model.get("spec") or {}
    digest = ((model.get("status") or {}).get("artifact") or {}).get("digest")
    source = source_run(model)
    by = f"registered by run {source}" if source else "registered outside a pipeline"
    return Done(
        f"{name} already registers {digest} ({by}); reused, no new version",
        outputs=(
            StepOutput("model", "parameter", value=name),
            StepOutput("version", "parameter", value=str(spec.get("version"))),
        ),
        produced_models=(name,),
        cache=CacheNote(True, f"model {name} has this artifact", source),
    )


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
