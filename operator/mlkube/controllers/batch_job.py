"""The BatchJob controller: observe, decide (builders/batch_job_state.py), act, write status.

Level-based: every pass reads the BatchJob, its endpoint, Model, resume source, its own Jobs
(found by label, kept only if they carry its controller reference) and, while it scores, the
output's progress files; the pure state machine decides; this module creates at most one Job
(POST only: a 409 means an earlier pass or another operator made it, which is fine), patches
the Jobs' `suspend`, and writes status only when it changed. Kopf specifics stay in
`mlkube.handlers.batch_job`; this module reports Events in an `Outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.batch import BatchEndpointSpec
from mlkube.api.batch_job import BatchJobSpec, PlanSummary
from mlkube.builders.batch_job import (
    BatchJobRef,
    build_merge_job,
    build_plan_job,
    build_score_job,
    step_job_name,
)
from mlkube.builders.batch_job_state import Decision, Observed, ResumeSource, decide
from mlkube.builders.batch_pods import STEPS
from mlkube.builders.batch_settings import (
    BatchSettings,
    SettingsProblem,
    output_uri,
    resolve_settings,
)
from mlkube.builders.environment_use import EnvironmentProblem, EnvironmentUse
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.names import label_value
from mlkube.builders.operator_config import OperatorConfig, store_problem
from mlkube.contract import (
    API_VERSION,
    FIELD_MANAGER,
    KIND_BATCH_ENDPOINT,
    KIND_BATCH_JOB,
    KIND_MODEL,
    LABEL_BATCH_JOB,
)
from mlkube.controllers.batch_observe import observe_results
from mlkube.controllers.environment_refs import read_environments
from mlkube.controllers.kube import ApiError, Kube
from mlkube.controllers.model_environments import record_model_environments

Event = tuple[str, str, str]
POLL_SECONDS: Final = 8.0


@dataclass(frozen=True)
class Outcome:
    events: list[Event] = field(default_factory=list)
    subject: dict[str, Any] | None = None
    poll: bool = False  # keep the progress loop running
    decision: Decision | None = None


def _settings(
    kube: Kube, namespace: str, spec: BatchJobSpec
) -> tuple[Any, tuple[str, str] | None, Any]:
    """(settings, blocker, model) from the endpoint and its Model."""
    endpoint = kube.get(API_VERSION, KIND_BATCH_ENDPOINT, spec.endpoint, namespace)
    if endpoint is None:
        return None, ("EndpointNotFound", f"BatchEndpoint {spec.endpoint} does not exist"), None
    try:
        settings = resolve_settings(
            BatchEndpointSpec.model_validate(endpoint.get("spec") or {}), spec
        )
    except ValidationError as err:
        return None, ("EndpointInvalid", f"BatchEndpoint {spec.endpoint}: {err}"), None
    except SettingsProblem as err:
        return None, ("DeploymentNotFound", f"BatchEndpoint {spec.endpoint}: {err}"), None
    model = read_model(settings.model, kube.get(API_VERSION, KIND_MODEL, settings.model, namespace))
    return settings, None, model


def job_environment(
    kube: Kube, config: OperatorConfig, namespace: str, settings: BatchSettings | None
) -> EnvironmentUse | EnvironmentProblem | None:
    """The deployment's environment, resolved (None: the deployment names none)."""
    if settings is None or not settings.environment:
        return None
    uses, problems = read_environments(kube, namespace, [settings.environment], config)
    return problems[0] if problems else uses[settings.environment]


def _source(kube: Kube, namespace: str, name: str) -> ResumeSource:
    obj = kube.get(API_VERSION, KIND_BATCH_JOB, name, namespace)
    if obj is None:
        return ResumeSource(found=False)
    status = obj.get("status") or {}
    try:
        plan = PlanSummary.model_validate(status["plan"]) if status.get("plan") else None
    except ValidationError:
        plan = None
    return ResumeSource(True, status.get("phase"), plan, status.get("outputUri"))


def owned_jobs(kube: Kube, namespace: str, name: str, uid: str) -> dict[str, dict[str, Any]]:
    """step -> the Job of that step this very BatchJob controls."""
    items = kube.list(
        "batch/v1", "Job", namespace, label_selector=f"{LABEL_BATCH_JOB}={label_value(name)}"
    )
    wanted = {step_job_name(name, step, uid): step for step in STEPS}
    found: dict[str, dict[str, Any]] = {}
    for job in items:
        meta = job.get("metadata") or {}
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
        if meta.get("name") in wanted and refs and refs[0].get("uid") == uid:
            found[wanted[meta["name"]]] = job
    return found


def reconcile(kube: Kube, config: OperatorConfig, namespace: str, name: str, now: str) -> Outcome:
    obj = kube.get(API_VERSION, KIND_BATCH_JOB, name, namespace)
    if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Outcome()
    meta = obj["metadata"]
    uid, generation = str(meta["uid"]), int(meta.get("generation", 1))
    status = obj.get("status") or {}
    spec, spec_error = None, None
    try:
        spec = BatchJobSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        spec_error = str(err)
    jobs = owned_jobs(kube, namespace, name, uid)
    obs = Observed(name=name, uid=uid, generation=generation, spec=spec, status=status,
                   now=now, spec_error=spec_error)  # fmt: skip
    if spec is not None and status.get("phase") not in ("Succeeded", "Failed", "Cancelled"):
        settings, blocker, model = _settings(kube, namespace, spec)
        source = _source(kube, namespace, spec.resume_from) if spec.resume_from else None
        if source is not None:
            output = source.output_uri
        else:
            output = output_uri(spec, namespace, name, config.batch_output_store)
        refused = next(
            (
                p
                for u in (spec.input.uri, output)
                if u and (p := store_problem(u, namespace, config))
            ),
            None,
        )
        environment = job_environment(kube, config, namespace, settings)
        if settings is not None and isinstance(environment, EnvironmentUse):
            # The Model's record of the images it is scored with (batch endpoints' lineage).
            used = [(settings.deployment, settings.model, environment)]
            record_model_environments(
                kube, namespace, spec.endpoint, used, kind=KIND_BATCH_ENDPOINT,
                scope={settings.deployment},
            )  # fmt: skip
        obs = Observed(
            name=name, uid=uid, generation=generation, spec=spec, status=status, now=now,
            output=output, settings=settings, blocker=blocker, model=model, source=source,
            refused=refused, environment=environment,
        )  # fmt: skip
    obs = observe_results(kube, config, namespace, obs, jobs)
    decision = decide(obs)
    events = _act(kube, config, namespace, obj, obs, decision, jobs)
    if _changed(status, decision.status):
        kube.patch(API_VERSION, KIND_BATCH_JOB, name, {"status": decision.status}, namespace,
                   subresource="status", field_manager=FIELD_MANAGER)  # fmt: skip
    return Outcome(events=events, subject=obj, poll=decision.poll, decision=decision)


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(old.get(key) != value for key, value in new.items())


def _act(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    obj: dict[str, Any],
    obs: Observed,
    decision: Decision,
    jobs: dict[str, dict[str, Any]],
) -> list[Event]:
    events = list(decision.events)
    for step, suspend in decision.suspend.items():
        job = jobs.get(step)
        if job is not None and bool((job.get("spec") or {}).get("suspend")) != suspend:
            try:
                kube.patch("batch/v1", "Job", job["metadata"]["name"],
                           {"spec": {"suspend": suspend}}, namespace,
                           field_manager=FIELD_MANAGER)  # fmt: skip
            except ApiError as err:
                if err.status != 404:  # gone: nothing left to stop
                    raise
    if decision.create is None:
        return events
    manifest = _manifest(config, namespace, obj, obs, decision)
    try:
        kube.create(manifest, field_manager=FIELD_MANAGER)
    except ApiError as err:
        if err.status != 409:
            raise
        # Made by an earlier pass whose status write was lost: do not announce it twice.
        events = [e for e in events if e[1] not in ("Started", "PartsInvalidated")]
    return events


def _manifest(
    config: OperatorConfig,
    namespace: str,
    obj: dict[str, Any],
    obs: Observed,
    decision: Decision,
) -> dict[str, Any]:
    spec, settings, output = obs.spec, obs.settings, obs.output
    assert spec is not None and settings is not None and output is not None
    owner = BatchJobRef(obs.name, namespace, obs.uid)
    if decision.create == "plan":
        model = obs.model if isinstance(obs.model, ModelFacts) else _no_model(settings.model)
        return build_plan_job(
            owner, input_uri=spec.input.uri, input_format=spec.input.format, output=output,
            settings=settings, model=model, config=config, resume=bool(spec.resume_from),
        )  # fmt: skip
    if decision.create == "score":
        assert isinstance(obs.model, ModelFacts) and decision.shape is not None
        return build_score_job(
            owner, output=output, shape=decision.shape, settings=settings, model=obs.model,
            config=config, suspend=spec.suspend,
            environment=obs.environment if isinstance(obs.environment, EnvironmentUse) else None,
        )  # fmt: skip
    return build_merge_job(owner, output=output, settings=settings, config=config)


def _no_model(name: str) -> ModelFacts:
    """The plan step of a new job lists the input only: it needs no model facts."""
    return ModelFacts(name=name, model_name=name, version="", framework="", uri="", digest="")
