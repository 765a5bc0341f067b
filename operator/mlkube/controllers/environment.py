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
from typing import Any, Final

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
from mlkube.contract import API_VERSION
from mlkube.controllers.environment_jobs import (
    BuildJobError,
    build_facts,
    job_outcome,
    job_ref,
    poll_job,
    start_or_join,
)
from mlkube.controllers.environment_ports import Deps, EnvironmentOutcome, RegistryError
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.environment_facts import (
    claim,
    conda_problem,
    duplicate_of,
    packages_from_label,
)

KIND_ENVIRONMENT: Final = "Environment"
CURATED_PREFIX: Final = "mlkube-"
RETRY_REASON: Final = "RegistryUnavailable"


class Unresolved(Exception):
    """An image reference could not be pinned: `retry` when the registry may answer later."""

    def __init__(self, reason: str, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.reason, self.retry = reason, retry


def reconcile(
    kube: Kube, deps: Deps, obj: Mapping[str, Any], *, now: datetime.datetime, attempt: int = 0
) -> EnvironmentOutcome:
    """One pass over an Environment's spec (its phase says what is left to do)."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    previous = dict(obj.get("status") or {})
    generation = int(meta.get("generation", 1))
    if previous.get("phase") in (READY, FAILED, BUILDING):
        if previous.get("observedGeneration") == generation:
            return EnvironmentOutcome()  # done, or the build loop follows the Job
        # The spec is immutable but for its description (CEL): nothing to redo.
        return EnvironmentOutcome(status=observed(previous, generation))
    step = Step(previous, generation, now)
    name, version = claim(obj)
    others = kube.list(API_VERSION, KIND_ENVIRONMENT, str(meta["namespace"]))
    holder = duplicate_of(obj, others)
    if holder is not None:
        return step.fail("Duplicate", duplicate_message(name, version, holder))
    try:
        if spec.get("image"):
            return resolve_image(deps, step, str(spec["image"]))
        return build(kube, deps, step, obj, others)
    except Unresolved as err:
        if not err.retry:
            return step.fail(err.reason, str(err), resolved=False)
        delay = retry_delay(attempt)
        message = f"{err}; retrying in {delay:.0f}s"
        status = environment_status(
            previous, generation=generation, phase=RESOLVING, reason=err.reason,
            message=message, now=step.stamp, resolved=False,
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
    ) -> EnvironmentOutcome:  # fmt: skip
        status = environment_status(
            self.previous, generation=self.generation, phase=FAILED, reason=reason,
            message=message, now=self.stamp, facts=facts, resolved=resolved, built=built,
        )  # fmt: skip
        return EnvironmentOutcome(status=status, events=[("Warning", reason, message)])

    def status(self, phase: str, reason: str, message: str, **kw: Any) -> dict[str, Any]:
        return environment_status(
            self.previous, generation=self.generation, phase=phase, reason=reason,
            message=message, now=self.stamp, **kw,
        )  # fmt: skip


def pin(deps: Deps, reference: str) -> str:
    """`reference` pinned by digest (`repo@sha256:…`), asking the registry for a tag."""
    if "@sha256:" in reference:
        return reference
    try:
        digest = deps.registry.digest(reference)
    except RegistryError as err:
        reason = "InvalidImageReference" if err.permanent else RETRY_REASON
        raise Unresolved(reason, f"cannot resolve {reference}: {err}",
                         retry=not err.permanent) from err  # fmt: skip
    if digest is None:
        raise Unresolved(
            "ImageNotFound", f"cannot resolve {reference}: the registry has no such image "
            "(tag or repository); push it, or correct the reference", retry=True,
        )  # fmt: skip
    return f"{repository_of(reference)}@{digest}"


def repository_of(reference: str) -> str:
    """`host/repo:tag` or `host/repo@sha256:…` -> `host/repo` (a port's colon is kept)."""
    ref = reference.split("@", 1)[0]
    head, _, tail = ref.rpartition("/")
    name = tail.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def resolve_image(deps: Deps, step: Step, reference: str) -> EnvironmentOutcome:
    image = pin(deps, reference)
    digest = image.split("@", 1)[1]
    facts = {"image": image, "imageDigest": digest,
             "resolvedFrom": None if reference == image else reference}  # fmt: skip
    message = f"image {image}"
    status = step.status(READY, "Resolved", message, facts=facts, resolved=True)
    return EnvironmentOutcome(status=status, events=[("Normal", "Resolved", message)])


def resolve_base(deps: Deps, base: str) -> str:
    """The base as an image pinned by digest: a curated environment from the operator's
    catalogue (`mlkube-…:version`), else an image reference."""
    if base.startswith(CURATED_PREFIX) and "/" not in base:
        image = deps.settings.curated.get(base)
        if image is None:
            known = ", ".join(sorted(deps.settings.curated)) or "none configured"
            raise Unresolved(
                "UnknownCuratedEnvironment", f"build.base {base} is not a curated environment "
                f"of this operator (known: {known}; MLKUBE_CURATED_ENVIRONMENTS)", retry=False,
            )  # fmt: skip
        return pin(deps, image)
    return pin(deps, base)


def build(
    kube: Kube, deps: Deps, step: Step, obj: Mapping[str, Any], others: list[dict[str, Any]]
) -> EnvironmentOutcome:
    spec = (obj.get("spec") or {}).get("build") or {}
    if not deps.settings.registry:
        return step.fail("NoRegistry", no_registry_message(), built=False)
    problem = conda_problem(spec.get("conda"))
    if problem is not None:
        return step.fail("CondaPackagesUnsupported", problem, built=False)
    base_image = resolve_base(deps, str(spec.get("base", "")))
    key = deps.planner.key(obj, base_image.split("@", 1)[1])
    facts: dict[str, Any] = {
        "base": {"reference": str(spec.get("base", "")), "image": base_image},
        "buildKey": key,
    }
    twin = ready_twin(obj, others, key)
    if twin is not None:
        return reused(step, facts, twin, f"Environment {twin['metadata']['name']}")
    tag = f"{deps.repository}:build-{key_hex(key)[:32]}"
    try:
        digest = deps.registry.digest(tag)
        labels = deps.registry.labels(tag) if digest else {}
    except RegistryError as err:
        raise Unresolved(RETRY_REASON, f"cannot look up {tag}: {err}", retry=True) from err
    if digest is not None:
        found = {"image": f"{deps.repository}@{digest}", "imageDigest": digest,
                 "packages": packages_from_label(labels)}  # fmt: skip
        return reused(step, facts, {"status": found}, f"registry tag {tag}")
    job, started = start_or_join(kube, deps, obj, key, base_image)
    facts["build"] = {**build_facts(job), "reused": False}
    ref = job_ref(job)
    if job_outcome(job) is not None:  # an ended Job of this key stays for its TTL: read it
        previous = {**step.previous, **facts}
        ended = poll_job(kube, deps, previous, step.generation, job, step.now)
        if ended.status:
            return ended
    message = f"building in Job {ref}" if started else f"joined the running build Job {ref}"
    status = step.status(BUILDING, "Building", message, facts=facts, resolved=True,
                         building=True)  # fmt: skip
    event = ("Normal", "BuildStarted", message)
    return EnvironmentOutcome(status=status, events=[event])


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
    build_info.update(reused=True, reusedFrom=what)
    message = f"image {copied['image']} reused from {what} (same build key)"
    status = step.status(
        READY, "BuildReused", message, facts={**facts, **copied, "build": build_info},
        resolved=True, built=True,
    )  # fmt: skip
    return EnvironmentOutcome(status=status, events=[("Normal", "BuildReused", message)])


def key_hex(key: str) -> str:
    return key.split(":", 1)[-1]
