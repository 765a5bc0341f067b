"""The Environment controller: pin an image, or find or build one (docs/environments.md §1-§3).

Level-based: each pass reads the object and the world (other Environments, the registry, the
build Job) and returns an `EnvironmentOutcome` (status to merge, Events, a retry); the handler
writes it. An `image:` environment is resolved to a digest. A build environment resolves its
base, computes the build key and reuses before it builds, in the order of §3: another Ready
Environment of this namespace with the same key, the registry's `build-<key32>` tag, a Job of
that key already running (joined), else a new Job (environment_jobs). While Building, the
handler's loop polls the Job (`poll_build`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlkube.builders.environment_build_spec import (
    BuildRequest,
    EnvironmentBuildError,
    EnvironmentRef,
)
from mlkube.builders.environment_status import (
    BUILDING,
    FAILED,
    PENDING,
    READY,
    RESOLVING,
    duplicate_message,
    environment_status,
    no_registry_message,
)
from mlkube.builders.model_retry import retry_delay
from mlkube.contract import API_VERSION, KIND_ENVIRONMENT
from mlkube.controllers.environment_jobs import (
    BuildJobError,
    build_facts,
    job_outcome,
    job_ref,
    poll_job,
    start_or_join,
)
from mlkube.controllers.environment_ports import Deps, EnvironmentOutcome, RegistryError
from mlkube.controllers.environment_probe import start_probe
from mlkube.controllers.environment_resolve import (
    RETRY_REASON,
    Unresolved,
    packaged_model,
    pin,
    resolve_base,
)
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.environment_facts import claim, duplicate_of
from mlkube.reconcile.environment_key import (
    EnvironmentKeyError,
    build_key,
    build_tag,
    inputs_from_spec,
)


def reconcile(
    kube: Kube, deps: Deps, obj: Mapping[str, Any], *, now: datetime.datetime, attempt: int = 0
) -> EnvironmentOutcome:
    """One pass over an Environment's spec (its phase says what is left to do)."""
    outcome = _pass(kube, deps, obj, now=now, attempt=attempt)
    # The status is a merge patch: a new build record (a retry, a reuse) must not keep the
    # old one's completionTime/durationSeconds, so the keys it drops are sent as null.
    old = (obj.get("status") or {}).get("build") or {}
    new = outcome.status.get("build")
    if isinstance(new, dict) and old.get("job") != new.get("job"):
        outcome.status["build"] = {**dict.fromkeys(old), **new}
    return outcome


def _pass(
    kube: Kube, deps: Deps, obj: Mapping[str, Any], *, now: datetime.datetime, attempt: int
) -> EnvironmentOutcome:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    previous = dict(obj.get("status") or {})
    generation = int(meta.get("generation", 1))
    if previous.get("phase") in (READY, FAILED, BUILDING):
        if previous.get("observedGeneration") == generation:
            return EnvironmentOutcome()  # done, or the build loop follows the Job
        if previous.get("phase") != FAILED:
            # The spec is immutable but for its description (CEL): nothing to redo.
            return EnvironmentOutcome(status=observed(previous, generation))
        # Failed, and the description changed: the user's way to try again (a failed build
        # Job is not joined again, environment_jobs.start_or_join).
    step = Step(previous, generation, now)
    name, version = claim(obj)
    others = kube.list(API_VERSION, KIND_ENVIRONMENT, str(meta["namespace"]))
    holder = duplicate_of(obj, others)
    if holder is not None:
        return step.fail("Duplicate", duplicate_message(name, version, holder), phase=PENDING)
    try:
        if spec.get("image"):
            return resolve_image(kube, deps, step, obj, str(spec["image"]))
        return build(kube, deps, step, obj, others)
    except Unresolved as err:
        if not err.retry:
            return step.fail(err.reason, str(err), resolved=False)
        delay = retry_delay(attempt)
        message = f"{err}; retrying in {delay:.0f}s"
        # A missing image or Model needs a human (Stalled) though it is retried; a registry
        # that does not answer is work in progress (Reconciling).
        status = environment_status(
            previous, generation=generation, phase=RESOLVING, reason=err.reason,
            message=message, now=step.stamp, resolved=False, stalled=err.reason != RETRY_REASON,
        )  # fmt: skip
        return EnvironmentOutcome(
            status=status, events=[("Warning", err.reason, message)],
            retry_message=str(err), retry_delay=delay,
        )  # fmt: skip


def observed(previous: Mapping[str, Any], generation: int) -> dict[str, Any]:
    """The same status, observed at `generation` (conditions included, for kstatus)."""
    conditions = [{**c, "observedGeneration": generation} for c in previous.get("conditions") or []]
    return {"observedGeneration": generation, "conditions": conditions}


@dataclass(frozen=True)
class Step:
    previous: dict[str, Any]
    generation: int
    now: datetime.datetime

    @property
    def stamp(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def fail(
        self, reason: str, message: str, *, resolved: bool | None = None,
        built: bool | None = None, facts: Mapping[str, Any] | None = None,
        phase: str = FAILED,
    ) -> EnvironmentOutcome:  # fmt: skip
        """Needs a human: Failed, or Pending and Stalled when a fix elsewhere (operator
        config, the twin's deletion) must lead to a new pass (resume runs Pending objects)."""
        status = environment_status(
            self.previous, generation=self.generation, phase=phase, reason=reason,
            message=message, now=self.stamp, facts=facts, resolved=resolved, built=built,
            stalled=True,
        )  # fmt: skip
        return EnvironmentOutcome(status=status, events=[("Warning", reason, message)])

    def status(self, phase: str, reason: str, message: str, **kw: Any) -> dict[str, Any]:
        return environment_status(
            self.previous, generation=self.generation, phase=phase, reason=reason,
            message=message, now=self.stamp, **kw,
        )  # fmt: skip


def resolve_image(
    kube: Kube, deps: Deps, step: Step, obj: Mapping[str, Any], reference: str
) -> EnvironmentOutcome:
    """Ready once pinned; the probe (what is in the image) follows, best effort."""
    image = pin(deps, reference)
    digest = image.split("@", 1)[1]
    facts = {"image": image, "imageDigest": digest,
             "resolvedFrom": None if reference == image else reference}  # fmt: skip
    message = f"image {image}"
    status = step.status(READY, "Resolved", message, facts=facts, resolved=True)
    events = [("Normal", "Resolved", message), *start_probe(kube, deps, obj, image)]
    return EnvironmentOutcome(status=status, events=events)


def build(
    kube: Kube, deps: Deps, step: Step, obj: Mapping[str, Any], others: list[dict[str, Any]]
) -> EnvironmentOutcome:
    meta, spec = obj["metadata"], (obj.get("spec") or {}).get("build") or {}
    if not deps.config.build.registry:
        return step.fail("NoRegistry", no_registry_message(), built=False, phase=PENDING)
    base_image = resolve_base(deps, str(spec.get("base", "")))
    model = packaged_model(kube, obj)
    try:
        inputs = inputs_from_spec(
            spec, base_digest=base_image.split("@", 1)[1],
            model_digest=model.digest if model else None,
            pip_settings=deps.config.build.pip, apt_sources=deps.config.build.apt_sources,
        )  # fmt: skip
    except EnvironmentKeyError as err:
        return step.fail("InvalidBuildSpec", f"spec.build: {err}", built=False)
    if inputs.conda is not None and inputs.conda.packages:
        return step.fail("CondaPackagesUnsupported", conda_message(inputs.conda.packages),
                         built=False)  # fmt: skip
    key = build_key(inputs)
    facts: dict[str, Any] = {
        "base": {"reference": str(spec.get("base", "")), "image": base_image},
        "buildKey": key,
    }
    twin = ready_twin(obj, others, key)
    if twin is not None:
        return reused(step, facts, twin, f"Environment {twin['metadata']['name']}")
    try:
        found = deps.registry.existing_build(deps.repository, key)
    except RegistryError as err:
        raise Unresolved(RETRY_REASON, str(err), retry=True) from err
    if found is not None:
        tag = f"{deps.repository}:{build_tag(key)}"
        return reused(step, facts, {"status": found}, f"registry tag {tag}")
    name, version = claim(obj)
    ref = EnvironmentRef(str(meta["namespace"]), name, version, str(meta["name"]))
    request = BuildRequest(environment=ref, key=key, base_image=base_image, inputs=inputs,
                           model=model)  # fmt: skip
    try:
        job, started = start_or_join(kube, deps, request)
    except EnvironmentBuildError as err:
        return step.fail("InvalidBuildSpec", str(err), built=False)
    facts["build"] = {**build_facts(job), "reused": False}
    if job_outcome(job) is not None:  # an ended Job of this key stays for its TTL: read it
        ended = poll_job(kube, deps, {**step.previous, **facts}, step.generation, job, step.now)
        if ended.status:
            return ended
    shown = job_ref(job)
    message = f"building in Job {shown}" if started else f"joined the running build Job {shown}"
    status = step.status(BUILDING, "Building", message, facts=facts, resolved=True,
                         building=True)  # fmt: skip
    return EnvironmentOutcome(status=status, events=[("Normal", "BuildStarted", message)])


def conda_message(packages: tuple[str, ...]) -> str:
    return (
        f"conda packages {', '.join(packages)} cannot be installed: a build honours only the "
        "python pin and the pip: list of a conda file (no conda channel is reachable from a "
        "build pod); list them under pip: or in spec.build.pip, or use a base image that has them"
    )


def poll_build(
    kube: Kube, deps: Deps, obj: Mapping[str, Any], now: datetime.datetime
) -> EnvironmentOutcome:
    """While Building: the Job's verdict once it has one. A Job gone before its verdict was
    read (deleted by hand) sends the Environment through a new pass: reuse, or build again."""
    status = dict(obj.get("status") or {})
    generation = int(obj["metadata"].get("generation", 1))
    ref = str((status.get("build") or {}).get("job", ""))
    namespace, _, name = ref.partition("/")
    if status.get("phase") != BUILDING or status.get("observedGeneration") != generation:
        return EnvironmentOutcome()
    try:
        job = kube.get("batch/v1", "Job", name, namespace) if name else None
    except ApiError as err:
        raise BuildJobError(f"cannot read build Job {ref}: {err}") from err
    if job is None:
        again = {**obj, "status": {**status, "phase": PENDING}}
        return reconcile(kube, deps, again, now=now)
    return poll_job(kube, deps, status, generation, job, now)


def ready_twin(
    obj: Mapping[str, Any], others: list[dict[str, Any]], key: str
) -> dict[str, Any] | None:
    for other in others:
        status = other.get("status") or {}
        if (
            other["metadata"]["name"] != obj["metadata"]["name"]
            and status.get("buildKey") == key
            and status.get("phase") == READY
            and status.get("imageDigest")
        ):
            return other
    return None


def reused(
    step: Step, facts: Mapping[str, Any], source: Mapping[str, Any], what: str
) -> EnvironmentOutcome:
    """Ready on an image built before (another Environment's, or the registry's tag)."""
    known = source.get("status") or {}
    copied = {k: known.get(k) for k in ("image", "imageDigest", "sizeBytes", "packages",
                                         "python", "serving", "packagedModel")}  # fmt: skip
    build_info = dict(known.get("build") or {})
    build_info["reused"] = True
    message = f"image {copied['image']} reused from {what} (same build key)"
    status = step.status(
        READY, "BuildReused", message, facts={**facts, **copied, "build": build_info},
        resolved=True, built=True,
    )  # fmt: skip
    return EnvironmentOutcome(status=status, events=[("Normal", "BuildReused", message)])
