"""The probe of an `image:` environment (docs/environments.md §2.1, §4): what is in it.

An image given by the user is Ready as soon as its tag is pinned; a Job in the build namespace
then runs the install script with `--probe` in that image (installing nothing) and reports its
Python, its packages and whether it provides the mlkube serving entrypoint, which deployments
check (`EnvironmentIncompatible`). One probe per image digest (`envprobe-<key20>`, shared like
builds). Best effort: a probe that cannot start or never runs leaves those facts unknown and
the environment usable; one whose container failed says the image is not compatible and why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from mlkube.api.environment_status import EnvironmentStatus
from mlkube.builders.environment_build import PROBE, probe_job
from mlkube.builders.environment_build_spec import (
    EnvironmentRef,
    parse_packages,
    probe_configmap,
)
from mlkube.controllers.environment_jobs import (
    BuildJobError,
    container_message,
    create_with_inputs,
    failed_container,
    job_outcome,
)
from mlkube.controllers.environment_ports import Deps, Event
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.environment_facts import claim, log_tail
from mlkube.reconcile.environment_key import probe_key

PROBE_CONTAINER: Final = PROBE


def probe_objects(
    deps: Deps, obj: Mapping[str, Any], image: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    name, version = claim(obj)
    meta = obj["metadata"]
    ref = EnvironmentRef(str(meta["namespace"]), name, version, str(meta["name"]))
    key = probe_key(image.split("@", 1)[1])
    job = probe_job(ref, image, key, deps.config, deps.namespace)
    return job, probe_configmap(ref, image, key, deps.config, deps.namespace)


def start_probe(kube: Kube, deps: Deps, obj: Mapping[str, Any], image: str) -> list[Event]:
    """Create the probe Job (or find it); an Event when it cannot start (not an error)."""
    job, config_map = probe_objects(deps, obj, image)
    try:
        create_with_inputs(kube, job, config_map)
    except BuildJobError as err:
        return [("Warning", "ProbeNotStarted", f"cannot probe {image}: {err}")]
    return []


def poll_probe(
    kube: Kube, deps: Deps, obj: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, bool]:
    """(status facts to merge or None, whether the probe is over)."""
    image = str((obj.get("status") or {}).get("image") or "")
    if "@" not in image:
        return None, True
    job, _ = probe_objects(deps, obj, image)
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    try:
        live = kube.get("batch/v1", "Job", name, namespace)
        if live is None:  # not started (or gone with its TTL before it was read): start it
            start_probe(kube, deps, obj, image)
            return None, False
        outcome = job_outcome(live)
        if outcome is None:
            return None, False
        pods = kube.list("v1", "Pod", namespace, label_selector=f"job-name={name}")
    except ApiError as err:
        if err.status == 403:  # no rights in the build namespace: the facts stay unknown
            return None, True
        raise BuildJobError(f"cannot read probe Job {namespace}/{name}: {err}") from err
    for pod in sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", ""))):
        facts = pod_facts(deps, pod, namespace)
        if facts is not None:
            return _validated(facts), True
    return None, True  # ended without running (deadline, no node): the facts stay unknown


def pod_facts(deps: Deps, pod: Mapping[str, Any], namespace: str) -> dict[str, Any] | None:
    """What a probe pod reported: its report and package line, or why its container failed."""
    failed = failed_container(pod)
    if failed is not None:
        container, message = failed
        try:
            tail = log_tail(deps.logs(namespace, pod["metadata"]["name"], container), lines=5)
        except ControllerError:
            tail = ""
        why = (message or tail or "no message").strip()[-500:]
        message = f"the probe ({container}) failed in the image: {why}"
        return {"serving": {"compatible": False, "message": message}}
    report = parse_json(container_message(pod, PROBE_CONTAINER))
    if report is None:
        return None
    try:
        log = deps.logs(namespace, pod["metadata"]["name"], PROBE_CONTAINER)
    except ControllerError:
        log = ""
    serving = report.get("serving")
    return {
        "python": report.get("python"),
        "serving": serving if isinstance(serving, dict) else None,
        "packages": parse_packages(log),
    }


def parse_json(message: str | None) -> dict[str, Any] | None:
    try:
        doc = json.loads(message or "")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "error" not in doc else None


def _validated(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Only what the API accepts (a probe of a foreign image may say anything)."""
    clean = {k: v for k, v in facts.items() if v is not None}
    serving = clean.get("serving")
    if isinstance(serving, dict):
        clean["serving"] = {k: serving[k] for k in ("compatible", "version", "message")
                            if serving.get(k) is not None}  # fmt: skip
        if "compatible" not in clean["serving"]:
            clean.pop("serving")
    try:
        return EnvironmentStatus.model_validate(clean).to_status()
    except ValueError:
        return {"serving": {"compatible": False, "message": "the probe's report is not readable"}}
