"""The build Job of an Environment: start or join it, and read its verdict (§2.1, §3).

Identical builds from any namespace share one Job in the build namespace, named after the
build key, so starting is create-or-join: a 409 means another Environment (or another pass)
started it first. A failed Job is the verdict of the Environments that waited on it, not of
a later one: a new pass starts the next attempt (`-r<n>`), so a transient pip or network
failure does not block identical builds for the failed Job's TTL. The inputs ConfigMap is
created before the Job, then owned by it (garbage-collected with it). When the Job ends the pod's
push container has written its report to the termination message and the package list as
one JSON line on stdout (read through pods/log); a failed build's message is the tail of the
log of the container that failed.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, Final

from mlkube.builders.environment_build import INSTALL, PUSH, build_job
from mlkube.builders.environment_build_spec import (
    BuildRequest,
    build_job_name,
    inputs_configmap,
    inputs_owner,
    parse_packages,
    parse_termination,
)
from mlkube.builders.environment_status import FAILED, READY, environment_status
from mlkube.contract import FIELD_MANAGER
from mlkube.controllers.environment_ports import Deps, EnvironmentOutcome
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.environment_facts import log_tail, parse_report

PUSH_CONTAINER: Final = PUSH
# A Job that finished without its pod's report readable yet (status lag): wait this long.
REPORT_GRACE_SECONDS: Final = 60.0
# Attempts of one key while their failed Jobs are kept (TTL); past them the last failure is
# the verdict until a Job expires (a build that fails every time is not retried forever).
MAX_ATTEMPTS: Final = 5


class BuildJobError(ControllerError):
    """The build Job could not be created or read."""


def job_ref(job: Mapping[str, Any]) -> str:
    return f"{job['metadata']['namespace']}/{job['metadata']['name']}"


def build_facts(job: Mapping[str, Any]) -> dict[str, Any]:
    """`status.build` of a Job: which one, when, where its logs are."""
    meta, status = job["metadata"], job.get("status") or {}
    facts: dict[str, Any] = {
        "job": job_ref(job),
        "logs": f"kubectl logs -n {meta['namespace']} job/{meta['name']} -c {INSTALL}",
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
    }
    start, end = status.get("startTime"), status.get("completionTime")
    if start and end:
        facts["durationSeconds"] = int((_time(end) - _time(start)).total_seconds())
    return {k: v for k, v in facts.items() if v is not None}


def job_outcome(job: Mapping[str, Any]) -> str | None:
    """'Complete', 'Failed' or None while the Job runs."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def job_failed(job: Mapping[str, Any]) -> bool:
    return job_outcome(job) == "Failed"


def start_or_join(kube: Kube, deps: Deps, request: BuildRequest) -> tuple[dict[str, Any], bool]:
    """The build Job of the request's key (running or complete: joined; none, or only failed
    ones: the next attempt, created now with its ConfigMap); True if created.
    EnvironmentBuildError when the build cannot be made as asked.

    Order (§2.1): the ConfigMap first, so the pod never waits for its inputs; then the Job;
    then the ConfigMap is made owned by the Job (garbage-collected with it)."""
    for attempt in range(MAX_ATTEMPTS):
        name = build_job_name(request.key, attempt)
        try:
            existing = kube.get("batch/v1", "Job", name, deps.namespace)
        except ApiError as err:
            raise BuildJobError(f"cannot read Job {deps.namespace}/{name}: {err}") from err
        if existing is None:
            break
        if not job_failed(existing) or attempt == MAX_ATTEMPTS - 1:
            return existing, False
    request = dataclasses.replace(request, attempt=attempt)
    job = build_job(request, deps.config, deps.namespace)
    config_map = inputs_configmap(request, deps.config, deps.namespace)
    return create_with_inputs(kube, job, config_map)


def create_with_inputs(
    kube: Kube, job: dict[str, Any], config_map: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Find the Job, or create its ConfigMap, the Job and the ConfigMap's owner reference."""
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    try:
        existing = kube.get("batch/v1", "Job", name, namespace)
        if existing is not None:
            return existing, False
        _create(kube, config_map)
        created = _create(kube, job)
        if created is None:  # another pass or Environment created it meanwhile: join
            joined = kube.get("batch/v1", "Job", name, namespace)
            if joined is None:
                raise BuildJobError(f"Job {namespace}/{name} vanished while starting")
            return joined, False
        owner = inputs_owner(name, created["metadata"]["uid"])
        kube.patch("v1", "ConfigMap", config_map["metadata"]["name"], owner, namespace,
                   field_manager=FIELD_MANAGER)  # fmt: skip
        return created, True
    except ApiError as err:
        raise BuildJobError(f"cannot start Job {namespace}/{name}: {err}") from err


def _create(kube: Kube, obj: dict[str, Any]) -> dict[str, Any] | None:
    """POST; None when the name is taken (409)."""
    try:
        return kube.create(obj, field_manager=FIELD_MANAGER)
    except ApiError as err:
        if err.status == 409:
            return None
        raise


def poll_job(
    kube: Kube,
    deps: Deps,
    previous: Mapping[str, Any],
    generation: int,
    job: Mapping[str, Any],
    now: datetime.datetime,
) -> EnvironmentOutcome:
    """The build's verdict once `job` has ended (nothing while it runs)."""
    outcome = job_outcome(job)
    if outcome is None:
        return EnvironmentOutcome()
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    try:
        pods = kube.list("v1", "Pod", namespace, label_selector=f"job-name={name}")
    except ApiError as err:
        raise BuildJobError(f"cannot list the pods of build Job {job_ref(job)}: {err}") from err
    pods.sort(key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
    build = {**(previous.get("build") or {}), **build_facts(job), "reused": False}
    stamp = _format(now)
    if outcome == "Failed":
        reason, message = failure(deps, job, pods)
        status = environment_status(
            previous, phase=FAILED, reason=reason, message=message,
            facts={"build": build}, built=False, generation=generation, now=stamp,
        )  # fmt: skip
        return EnvironmentOutcome(status=status, events=[("Warning", reason, message)])
    report, pod = None, None
    for pod in reversed(pods):
        report = parse_report(container_message(pod, PUSH_CONTAINER))
        if report is not None:
            break
    if report is None or pod is None:
        finished = _since(job.get("status", {}).get("completionTime"), now)
        if finished < REPORT_GRACE_SECONDS:
            return EnvironmentOutcome()
        message = f"build Job {job_ref(job)} succeeded without a report from its push container"
        status = environment_status(
            previous, phase=FAILED, reason="BuildFailed", message=message, built=False,
            generation=generation, now=stamp,
        )  # fmt: skip
        return EnvironmentOutcome(status=status, events=[("Warning", "BuildFailed", message)])
    packages = parse_packages(deps.logs(namespace, pod["metadata"]["name"], PUSH_CONTAINER))
    facts = {
        "image": report.image or f"{deps.repository}@{report.digest}",
        "imageDigest": report.digest, "sizeBytes": report.size_bytes, "packages": packages,
        "python": report.python, "serving": report.serving or None,
        "packagedModel": packaged(report.packaged_model), "build": build,
    }  # fmt: skip
    message = f"built {facts['image']}" + (
        f" in {build['durationSeconds']}s" if "durationSeconds" in build else ""
    )
    status = environment_status(
        previous, phase=READY, reason="Built", message=message, facts=facts, built=True,
        generation=generation, now=stamp,
    )  # fmt: skip
    return EnvironmentOutcome(status=status, events=[("Normal", "Built", message)])


def packaged(model: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`status.packagedModel` from the push report's (name and the verified digest)."""
    if not model or not model.get("name"):
        return None
    digest = model.get("artifactDigest") or model.get("digest")
    return {"name": str(model["name"]), "artifactDigest": str(digest) if digest else None}


def container_message(pod: Mapping[str, Any], container: str) -> str | None:
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        if st.get("name") == container:
            terminated = (st.get("state") or {}).get("terminated") or {}
            return str(terminated.get("message") or "") or None
    return None


def failed_container(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(container, its termination message) of the first container that exited non-zero."""
    status = pod.get("status") or {}
    for st in [*(status.get("initContainerStatuses") or []),
               *(status.get("containerStatuses") or [])]:  # fmt: skip
        terminated = (st.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode") not in (None, 0):
            return str(st["name"]), str(terminated.get("message") or "")
    return None


def failure(deps: Deps, job: Mapping[str, Any], pods: list[dict[str, Any]]) -> tuple[str, str]:
    """(reason, message) of a failed build: the failing container, the tools' own verdict
    (`{"error", "reason"}` termination message: PythonMismatch, CondaPackagesUnsupported,
    ModelFetchFailed, PushFailed, ...) and the tail of its log; or why the Job failed."""
    namespace = job["metadata"]["namespace"]
    for pod in reversed(pods):
        failed = failed_container(pod)
        if failed is None:
            continue
        container, message = failed
        verdict = tool_verdict(message)
        reason = verdict[0] if verdict else "BuildFailed"
        try:
            tail = log_tail(deps.logs(namespace, pod["metadata"]["name"], container))
        except ControllerError:
            tail = ""
        tail = tail or ("" if verdict else log_tail(message)) or "(no log)"
        error = f": {verdict[1]}" if verdict else ""
        return reason, (
            f"build Job {job_ref(job)}: container {container} failed{error}; "
            f"`kubectl logs -n {namespace} {pod['metadata']['name']} -c {container}` ends "
            f"with:\n{tail}\n(to build again: change this Environment's spec.description, "
            "or create it anew; a new Environment with the same inputs builds again too)"
        )
    reasons = [str(c.get("message") or c.get("reason") or "")
               for c in (job.get("status") or {}).get("conditions") or []
               if c.get("type") == "Failed"]  # fmt: skip
    found = "; ".join(r for r in reasons if r) or "no reason"
    return "BuildFailed", f"build Job {job_ref(job)} failed: {found}"


def tool_verdict(message: str) -> tuple[str, str] | None:
    """(reason, error) from a build tool's `{"error", "reason"}` termination message."""
    doc = parse_termination(message)
    if not doc or not doc.get("error"):
        return None
    reason = str(doc.get("reason") or "BuildFailed")
    return (reason if reason.isalnum() and reason[:1].isupper() else "BuildFailed"), str(
        doc["error"]
    )


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _since(text: str | None, now: datetime.datetime) -> float:
    return (now - _time(text)).total_seconds() if text else 0.0


def _format(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")
