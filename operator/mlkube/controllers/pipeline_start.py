"""Starting a ready container step: resolve, consult the cache, single-flight, create its Job.

docs/pipelines.md §3: the key covers the image digest (never a tag), the rendered command,
args and env (so parameter values), the inputs' content digests, the declared outputs and
cache.version. A hit is re-verified (the outputs still exist with their digests) before it
is used; a miss says why in `status.steps[].cache.reason`. Before creating a Job for key K,
an active Job of another run labelled with K (or a completed one that run has not read
yet) makes the step wait for that run's entry.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Final

from mlkube import contract as c
from mlkube.api.pipeline_step import Step
from mlkube.builders import pipeline_contract as pc
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.pipeline_step import StepInput, StepOutput, StepPod, build_step_job
from mlkube.contract import API_VERSION, FIELD_MANAGER, KIND_MODEL, KIND_PIPELINE_RUN
from mlkube.controllers import pipeline_cache as cache
from mlkube.controllers import pipeline_decide as decide
from mlkube.controllers.environment_refs import read_environments
from mlkube.controllers.kube import ApiError
from mlkube.controllers.locks import KeyedLocks
from mlkube.controllers.pipeline_steps import (
    WAIT_SECONDS,
    RunContext,
    finish,
    stamp,
)
from mlkube.controllers.pipeline_store import StoreUnreadable
from mlkube.reconcile import pipeline_cache as keys
from mlkube.reconcile.batch_job_facts import job_facts

_FLIGHTS: Final = KeyedLocks()  # by (namespace, cache key): see start()


class NotYet(Exception):
    """Something the step needs is not there yet (a Model not Ready, a store unreachable)."""


def _upstream_output(ctx: RunContext, step: str, output: str) -> dict[str, Any]:
    for out in ctx.steps.get(step, {}).get("outputs") or []:
        if out.get("name") == output:
            return dict(out)
    metrics = ctx.steps.get(step, {}).get("metrics") or {}
    if metrics and any(o.name == output and o.type == "metrics"
                       for o in ctx.step_spec(step).outputs):  # fmt: skip
        return {"name": output, "type": "metrics", "metrics": metrics}
    raise decide.DecisionError(f"step {step} recorded no output {output}")


def resolve_inputs(ctx: RunContext, step: Step) -> tuple[list[StepInput], dict[str, str]]:
    """(the pod's inputs, name → what enters the cache key)."""
    pod_inputs: list[StepInput] = []
    keyed: dict[str, str] = {}
    for i in step.inputs:
        if i.from_parameter is not None:
            value = ctx.parameters[i.from_parameter]
            pod_inputs.append(StepInput(i.name, value=value))
            keyed[i.name] = "value:" + value
        elif i.from_step is not None:
            out = _upstream_output(ctx, i.from_step.step, i.from_step.output)
            if out.get("type", "artifact") == "artifact":
                pod_inputs.append(StepInput(i.name, uri=out.get("uri"), digest=out.get("digest")))
                keyed[i.name] = str(out.get("digest"))
            else:
                value = str(out.get("value") if "value" in out else out.get("metrics"))
                pod_inputs.append(StepInput(i.name, value=value))
                keyed[i.name] = "value:" + value
        elif i.uri is not None:
            try:
                digest = i.digest or cache.input_digest(ctx.store, ctx.run.namespace, i.uri,
                                                        ctx.config)  # fmt: skip
            except StoreUnreadable as err:
                raise NotYet(f"input {i.name}: {err}") from err
            pod_inputs.append(StepInput(i.name, uri=i.uri, digest=digest))
            keyed[i.name] = digest
        elif i.model is not None:
            obj = ctx.kube.get(API_VERSION, KIND_MODEL, i.model, ctx.run.namespace)
            facts = read_model(i.model, obj)
            if not isinstance(facts, ModelFacts):
                raise NotYet(f"input {i.name}: {facts.message}")
            pod_inputs.append(StepInput(i.name, uri=facts.uri, digest=facts.digest))
            keyed[i.name] = facts.digest
    for ignored in step.cache.ignored_inputs:
        keyed.pop(ignored, None)
    return pod_inputs, keyed


def _template_values(ctx: RunContext, step: Step, inputs: list[StepInput]) -> dict[str, str]:
    values = {f"parameters.{k}": v for k, v in ctx.parameters.items()}
    paths = pc.StepPaths()
    for i in inputs:
        values[f"inputs.{i.name}"] = paths.input(i.name) if i.uri else (i.value or "")
    for o in step.outputs:
        values[f"outputs.{o.name}"] = paths.output(o.name)
    values["run.name"], values["run.uid"] = ctx.run.name, ctx.run.uid
    return values


def _rendered(
    step: Step, values: dict[str, str]
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """The step's command, args and env with templates rendered from `values`."""
    command = [decide.render(a, values) for a in step.command]
    args = [decide.render(a, values) for a in step.args]
    env = [{**e.model_dump(by_alias=True, exclude_none=True),
            **({"value": decide.render(e.value, values)} if e.value is not None else {})}
           for e in step.env]  # fmt: skip
    return command, args, env


def _cache_reason(ctx: RunContext, step: Step, key: str | None, why: str) -> str | None:
    """Why the cache is not consulted at all, or None when it is."""
    if not step.cache.enabled:
        return "disabled"
    if step.name in ctx.forced:
        return "rerunSteps" if ctx.spec.resume_from else "ForceRerun"
    if ctx.spec.cache_policy == "ForceRerun":
        return "ForceRerun"
    if key is None:
        return f"uncacheable: {why}"
    return None


def _cached(ctx: RunContext, step: Step, key: str) -> tuple[dict[str, Any] | None, str]:
    """(a verified entry to reuse, or None; the reason)."""
    source = ctx.source_steps.get(step.name)
    if (
        source
        and source.get("phase") == "Succeeded"
        and (source.get("cache") or {}).get("key") == key
    ):
        problem = cache.verify_outputs(list(source.get("outputs") or []), ctx.run.namespace,
                                       ctx.config)  # fmt: skip
        if problem is None:
            run = (source.get("cache") or {}).get("sourceRun") or ctx.spec.resume_from
            return {"sourceRun": run, "outputs": source.get("outputs") or [],
                    "metrics": source.get("metrics") or {}}, "hit (resumeFrom)"  # fmt: skip
    seconds = decide.duration_seconds(step.cache.max_age)
    found = cache.lookup(ctx.store, ctx.run.namespace, key, max_age_seconds=seconds,
                         max_age_text=step.cache.max_age, now=ctx.now,
                         config=ctx.config)  # fmt: skip
    return (found.entry if found.hit else None), found.reason


def _busy_elsewhere(ctx: RunContext, key: str) -> str | None:
    """The run of another active Job with this key, if any (single flight)."""
    jobs = ctx.kube.list("batch/v1", "Job", ctx.run.namespace,
                         label_selector=f"{c.LABEL_CACHE_KEY}={keys.cache_label(key)}")  # fmt: skip
    for job in jobs:
        meta = job.get("metadata") or {}
        other = (meta.get("labels") or {}).get(c.LABEL_PIPELINE_RUN)
        if not other or other == ctx.run.name or meta.get("deletionTimestamp"):
            continue
        finished = job_facts(job).finished
        if finished is None or (finished == "Complete" and _unrecorded(ctx, other, meta)):
            return str(other)
    return None


def _unrecorded(ctx: RunContext, run: str, job_meta: dict[str, Any]) -> bool:
    """A completed Job its run has not read yet: the cache has no entry for it until then, so
    a step that went on now would run again what is already done."""
    obj = ctx.kube.get(API_VERSION, KIND_PIPELINE_RUN, run, ctx.run.namespace)
    steps = ((obj or {}).get("status") or {}).get("steps") or []
    job = job_meta.get("name")
    return any(s.get("job") == job and s.get("phase") == "Running" for s in steps)


def _refuse(ctx: RunContext, step: Step, why: str) -> None:
    """The step cannot run as specified: Failed, no retry helps."""
    finish(ctx, ctx.steps[step.name], "Failed", why)
    ctx.events.append(("Warning", "StepFailed", f"step {step.name}: {why}"[:1024]))


def _create(ctx: RunContext, step: Step, attempt: int, job: dict[str, Any]) -> None:
    """Create the attempt's Job; one that exists already (a lost status write) is adopted."""
    try:
        ctx.kube.create(job, field_manager=FIELD_MANAGER)
    except ApiError as err:
        if err.status != 409:
            raise
        return
    name = job["metadata"]["name"]
    ctx.events.append(("Normal", "StepStarted", f"step {step.name} attempt {attempt}: Job {name}"))


def step_image(ctx: RunContext, step: Step) -> str | None:
    """The step's image: its own, or its environment's (pinned by digest, so the cache key
    holds the digest); None while the environment is not Ready (the step waits)."""
    if not step.environment:
        assert step.image is not None
        return step.image
    st = ctx.steps[step.name]
    uses, problems = read_environments(
        ctx.kube, ctx.run.namespace, [step.environment], ctx.config, serving=False
    )
    if problems:
        st["phase"], st["message"] = "Pending", f"{problems[0].reason}: {problems[0].message}"
        ctx.requeue.append(WAIT_SECONDS)
        return None
    use = uses[step.environment]
    st["environment"] = use.record()
    return use.image


def start(ctx: RunContext, step: Step, attempt: int) -> str | None:
    """Start `attempt` of the step: the Job's name once it exists (made now or adopted), None
    when the step was served from the cache, waits, or cannot run (its status says which)."""
    st = ctx.steps[step.name]
    try:
        inputs, keyed = resolve_inputs(ctx, step)
        values = _template_values(ctx, step, inputs)
        command, args, env = _rendered(step, values)
        # The kubelet expands `$(VAR)` and `$$` in command, args and env values: substituted
        # values go into the pod escaped so they reach the step as given (the key is over the
        # values as given, the same whatever the escaping).
        escaped = {k: pc.kube_escape(v) for k, v in values.items()}
        pod_command, pod_args, pod_env = _rendered(step, escaped)
    except (decide.DecisionError, pc.ContractError) as err:
        _refuse(ctx, step, str(err))
        return None
    except NotYet as err:
        st["phase"], st["message"] = "Pending", str(err)[-1024:]
        ctx.requeue.append(WAIT_SECONDS)
        return None
    image = step_image(ctx, step)
    if image is None:
        return None
    digest, why = decide.image_digest(image, ctx.config.image_digests)
    outputs = [(o.name, str(o.type)) for o in step.outputs]
    key = None
    if digest is not None:
        key = decide.cache_key(namespace=ctx.run.namespace, image_digest=digest,
                               command=command, args=args, env=env, inputs=keyed,
                               outputs=outputs, version=step.cache.version,
                               parameters=ctx.parameters,
                               ignored_inputs=list(step.cache.ignored_inputs))  # fmt: skip
    reason = _cache_reason(ctx, step, key, why)
    consult = reason is None  # ForceRerun, disabled, uncacheable: neither hit nor wait
    if reason is None and key is not None and attempt == 1:
        try:
            entry, reason = _cached(ctx, step, key)
        except StoreUnreadable as err:
            entry, reason = None, f"cache unreadable: {err}"
        if entry is not None:
            st["cache"] = {"hit": True, "key": key, "sourceRun": entry.get("sourceRun"),
                           "reason": reason}  # fmt: skip
            st["outputs"] = [{k: v for k, v in o.items() if k != "fingerprint"}
                             for o in entry.get("outputs") or []]  # fmt: skip
            st["metrics"] = dict(entry.get("metrics") or {})
            # The key holds the image digest, so the cached outputs came from that image:
            # lineage (registerModel) names it as it would after a run of its own.
            st["imageDigest"] = digest
            st.setdefault("startTime", stamp(ctx.now))
            finish(ctx, st, "Succeeded", None)
            ctx.events.append(("Normal", "StepCached",
                               f"step {step.name} served from the cache of run "
                               f"{entry.get('sourceRun')}"))  # fmt: skip
            return None
    elif reason is None:
        reason = (st.get("cache") or {}).get("reason") or "retry"
    pod = StepPod(
        step=step.name, attempt=attempt, image=image, prefix=ctx.prefix(step.name, attempt),
        command=tuple(pod_command), args=tuple(pod_args), env=tuple(pod_env),
        resources=step.resources.model_dump(by_alias=True, exclude_none=True)
        if step.resources else {},
        inputs=tuple(inputs), outputs=tuple(StepOutput(o.name, o.type) for o in step.outputs),
        parameters=tuple(sorted(ctx.parameters.items())), cache_key=key,
        timeout_seconds=int(decide.duration_seconds(step.timeout)) if step.timeout else None,
        pull_secret=ctx.config.build.image_pull_secret if step.environment else None,
    )  # fmt: skip
    try:
        job = build_step_job(ctx.run, pod, ctx.config)
    except pc.ContractError as err:
        _refuse(ctx, step, str(err))
        return None
    # One check-then-create at a time per key in this process (only the leader reconciles):
    # two runs reaching an identical step at once must not both find no Job and both run it.
    with _FLIGHTS.hold(ctx.run.namespace, key) if consult and key else nullcontext():
        if consult and key is not None and (other := _busy_elsewhere(ctx, key)) is not None:
            st["phase"] = "Waiting"
            st["message"] = f"waiting for run {other}, which runs the identical step"
            st["cache"] = {"hit": False, "key": key, "reason": "running in run " + other}
            ctx.requeue.append(WAIT_SECONDS)
            return None
        _create(ctx, step, attempt, job)
    st.update(phase="Running", job=job["metadata"]["name"], attempts=attempt)
    st.setdefault("startTime", stamp(ctx.now))
    st.pop("nextAttemptTime", None)
    st.pop("message", None)
    st["cache"] = {"hit": False, "reason": reason, **({"key": key} if key else {})}
    return str(job["metadata"]["name"])
