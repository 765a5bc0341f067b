"""Model handlers: Kopf wiring around `mlkube.controllers.model` (verify, status, Events).

Polling loops (`mlkube.handlers.periodic`) rather than Kopf timers: a Kopf timer puts a
finalizer on the Model, which an absent operator would never remove.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import kopf

from mlkube.builders.model_audit import changed_paths
from mlkube.contract import API_VERSION, GROUP, KIND_MODEL, PLURAL_MODELS, VERSION
from mlkube.controllers import model as controller
from mlkube.controllers.endpoint_models import repair_deployed_by
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import get_live
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.metrics import reconciling
from mlkube.handlers.periodic import LOOPS
from mlkube.handlers.webhooks import audit_key
from mlkube.k8s import ApiError
from mlkube.reconcile.audit_proof import with_trusted_stamps

VERIFY_SECONDS: Final = 2.0
REFERENCES_SECONDS: Final = 300.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def report(body: kopf.Body, patch: kopf.Patch, outcome: controller.ModelOutcome) -> None:
    """Status into Kopf's patch (written with the diff-base), Events, then maybe a retry."""
    patch.status.update(outcome.status)
    for type_, reason, message in outcome.events:
        # kopf.event, not kopf.info: posting.level (WARNING) filters info, not explicit events.
        kopf.event(body, type=type_, reason=reason, message=message)
    if outcome.retry_delay is not None:
        raise kopf.TemporaryError(outcome.retry_message or "retrying", delay=outcome.retry_delay)


@functools.cache
def verify_executor(workers: int) -> ThreadPoolExecutor:
    """The Model reconciles' own threads (MLKUBE_VERIFY_WORKERS): a digest may read for up
    to the artifact time cap, and in Kopf's shared pool a few big Models would hold every
    thread that endpoint reconciles and watch reactions need."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlkube-verify")


@kopf.on.resume(GROUP, VERSION, PLURAL_MODELS)
@kopf.on.create(GROUP, VERSION, PLURAL_MODELS)
@kopf.on.update(GROUP, VERSION, PLURAL_MODELS, field="spec")
async def reconcile_model(
    body: kopf.Body, patch: kopf.Patch, reason: str, diff: kopf.Diff, retry: int, **_: Any
) -> None:
    created = reason == kopf.Reason.CREATE
    changes = ["spec"] if created else changed_paths(diff) or ["spec"]
    config = operator_config()
    run = functools.partial(
        controller.reconcile, kube(), config, with_trusted_stamps(body, audit_key()),
        created=created, changes=changes, now=controller.format_time(utc_now()), attempt=retry,
    )  # fmt: skip
    try:
        with reconciling(KIND_MODEL):
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(verify_executor(config.verify_workers), run)
    except (ApiError, ControllerError) as err:
        raise kopf.TemporaryError(str(err), delay=controller.JOB_ERROR_DELAY) from err
    report(body, patch, outcome)


@kopf.on.event(GROUP, VERSION, PLURAL_MODELS)
async def model_loops(
    type: str, body: kopf.Body, status: kopf.Status, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """Poll the pvc:// verification Job while Verifying; while endpoints are listed in
    `deployedBy`, check them against the live endpoints (at once on first sight, e.g. at
    operator start, then every REFERENCES_SECONDS): an endpoint deleted while the operator
    was away, or whose DELETED event was missed, does not stay listed."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        LOOPS.stop(uid)
        return
    namespace = namespace or "default"
    if status.get("phase") == "Verifying":
        tick = functools.partial(verify_tick, namespace, name, uid, logger)
        LOOPS.ensure(uid, "verify", tick, VERIFY_SECONDS, logger)
    else:
        LOOPS.stop(uid, "verify")
    if status.get("deployedBy"):
        tick = functools.partial(references_tick, namespace, name, uid, logger)
        LOOPS.ensure(uid, "references", tick, 0.0, logger)
    else:
        LOOPS.stop(uid, "references")


def verify_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """Read the outcome of a pvc:// verification Job into the Model's status."""
    try:
        obj = get_live(kube(), API_VERSION, KIND_MODEL, name, namespace, uid)
        if obj is None:
            return None
        if (obj.get("status") or {}).get("phase") != "Verifying":
            return VERIFY_SECONDS  # verified meanwhile: the Model's next event stops the loop
        outcome = controller.poll_verification_job(kube(), operator_config(), obj, utc_now())
        if outcome.status:
            body = {"status": outcome.status}
            kube().patch(API_VERSION, KIND_MODEL, name, body, namespace, subresource="status")
    except (ApiError, ControllerError) as err:
        logger.warning(f"reading the verification Job failed: {err}")
        return controller.JOB_ERROR_DELAY
    for type_, reason, message in outcome.events:
        kopf.event(kopf.Body(cast(kopf.RawBody, obj)), type=type_, reason=reason, message=message)
    return VERIFY_SECONDS


def references_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """`deployedBy` recomputed from the live endpoints (which add themselves on reconcile)."""
    try:
        obj = get_live(kube(), API_VERSION, KIND_MODEL, name, namespace, uid)
        if obj is None:
            return None
        repair_deployed_by(kube(), namespace, name, read=obj)  # one GET of the Model, not two
    except (ApiError, ControllerError) as err:
        logger.warning(f"repairing deployedBy failed: {err}")
    return REFERENCES_SECONDS
