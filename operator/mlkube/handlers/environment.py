"""Environment handlers: Kopf wiring around `mlkube.controllers.environment`.

A pass runs on create/resume/spec change (resolve, reuse or start the build); polling loops
(`handlers/periodic.py`, no Kopf timers: they add finalizers) follow the build Job while the
Environment is Building and keep `status.usedBy` current from the live endpoints, batch
endpoints and pipelines. A Duplicate whose older twin is gone gets a fresh pass from the
usage loop (nothing in its own spec changed to trigger one).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import kopf

from mlkube.contract import API_VERSION, GROUP, KIND_ENVIRONMENT, PLURAL_ENVIRONMENTS, VERSION
from mlkube.controllers import environment as controller
from mlkube.controllers.environment_ports import EnvironmentOutcome
from mlkube.controllers.environment_probe import poll_probe
from mlkube.controllers.environment_usage import used_by_patch
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import get_live
from mlkube.handlers.clients import kube
from mlkube.handlers.environment_wiring import environment_deps
from mlkube.handlers.metrics import reconciling
from mlkube.handlers.periodic import LOOPS, post_events
from mlkube.k8s import ApiError

KIND: Final = KIND_ENVIRONMENT
PLURAL: Final = PLURAL_ENVIRONMENTS
BUILD_POLL_SECONDS: Final = 2.0
PROBE_POLL_SECONDS: Final = 5.0
USAGE_SECONDS: Final = 30.0
DUPLICATE_SECONDS: Final = 5.0  # a Duplicate looks for its older twin's deletion more often
ERROR_DELAY: Final = 10.0
PASS_WORKERS: Final = 2


@functools.cache
def passes() -> ThreadPoolExecutor:
    """The passes' own threads: a registry that hangs (up to the client's timeout per
    request) must not hold the threads of Kopf's shared pool other kinds need."""
    return ThreadPoolExecutor(max_workers=PASS_WORKERS, thread_name_prefix="mlkube-environment")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_environment(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    run = functools.partial(
        controller.reconcile, kube(), environment_deps(), body, now=utc_now(), attempt=retry
    )
    try:
        with reconciling(KIND):
            outcome = await asyncio.get_running_loop().run_in_executor(passes(), run)
    except (ApiError, ControllerError) as err:
        raise kopf.TemporaryError(str(err), delay=ERROR_DELAY) from err
    patch.status.update(outcome.status)
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)
    if outcome.retry_delay is not None:
        raise kopf.TemporaryError(outcome.retry_message or "retrying", delay=outcome.retry_delay)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def environment_loops(
    type: str, body: kopf.Body, status: kopf.Status, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        LOOPS.stop(uid)
        return
    namespace = namespace or "default"
    if status.get("phase") == "Building":
        tick = functools.partial(build_tick, namespace, name, uid, logger)
        LOOPS.ensure(uid, "build", tick, BUILD_POLL_SECONDS, logger)
    else:
        LOOPS.stop(uid, "build")
    if status.get("phase") == "Ready" and body.spec.get("image") and "serving" not in status:
        tick = functools.partial(probe_tick, namespace, name, uid, logger)
        LOOPS.ensure(uid, "probe", tick, PROBE_POLL_SECONDS, logger)
    else:
        LOOPS.stop(uid, "probe")
    tick = functools.partial(usage_tick, namespace, name, uid, logger)
    LOOPS.ensure(uid, "usage", tick, 0.0, logger)


def write(obj: Mapping[str, Any], outcome: EnvironmentOutcome) -> None:
    """A tick's outcome: the status patch (the resourceVersion it was computed from is a
    precondition: a pass that raced the handler's is dropped, the next tick redoes it)."""
    meta = obj["metadata"]
    if outcome.status:
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": outcome.status}
        kube().patch(API_VERSION, KIND, meta["name"], body, meta["namespace"],
                     subresource="status")  # fmt: skip
    post_events(obj, outcome.events)


def build_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """Read the build Job's verdict into the Environment's status."""
    try:
        obj = get_live(kube(), API_VERSION, KIND, name, namespace, uid)
        if obj is None:
            return None
        if (obj.get("status") or {}).get("phase") != "Building":
            return BUILD_POLL_SECONDS  # done meanwhile: the next event stops the loop
        with reconciling(KIND):
            outcome = controller.poll_build(kube(), environment_deps(), obj, utc_now())
        write(obj, outcome)
    except (ApiError, ControllerError) as err:
        logger.warning(f"following the build Job failed: {err}")
        return ERROR_DELAY
    return BUILD_POLL_SECONDS


def probe_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """Read the probe of an `image:` environment into its status (until it has a verdict)."""
    try:
        obj = get_live(kube(), API_VERSION, KIND, name, namespace, uid)
        if obj is None:
            return None
        facts, over = poll_probe(kube(), environment_deps(), obj)
        if facts:
            kube().patch(API_VERSION, KIND, name, {"status": facts}, namespace,
                         subresource="status")  # fmt: skip
    except (ApiError, ControllerError) as err:
        logger.warning(f"reading the probe Job failed: {err}")
        return ERROR_DELAY
    return None if over else PROBE_POLL_SECONDS


def ready_reason(conditions: list[dict[str, Any]]) -> str | None:
    return next((str(c.get("reason")) for c in conditions if c.get("type") == "Ready"), None)


def usage_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """usedBy from the live users; a Duplicate whose twin is gone gets a new pass."""
    try:
        obj = get_live(kube(), API_VERSION, KIND, name, namespace, uid)
        if obj is None:
            return None
        status = obj.get("status") or {}
        duplicate = ready_reason(status.get("conditions") or []) == "Duplicate"
        if duplicate:
            again = {**obj, "status": {**status, "phase": "Pending"}}
            outcome = controller.reconcile(kube(), environment_deps(), again, now=utc_now())
            if ready_reason(outcome.status.get("conditions") or []) != "Duplicate":
                write(obj, outcome)  # the older twin is gone: this one is built now
                return USAGE_SECONDS
        patch = used_by_patch(kube(), obj)
        if patch is not None:
            kube().patch(API_VERSION, KIND, name, {"status": patch}, namespace,
                         subresource="status")  # fmt: skip
    except (ApiError, ControllerError) as err:
        logger.warning(f"computing usedBy failed: {err}")
        return ERROR_DELAY
    return DUPLICATE_SECONDS if duplicate else USAGE_SECONDS
