"""BatchJob handlers: reconcile on create/update/resume and whenever one of its Jobs changes;
while the job is not finished, a progress loop (handlers/periodic.py, no finalizer) reconciles
every few seconds so counts from the output store reach status while pods run.

The work lives in `mlkube.controllers.batch_job`; one lock per BatchJob serializes the
handler, the loop and Job events inside the process. Nothing here adds a finalizer: the Jobs
are owned and garbage-collected with the BatchJob.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Final

import kopf

from mlkube.builders.names import controller_owner
from mlkube.contract import (
    API_VERSION,
    GROUP,
    KIND_BATCH_JOB,
    LABEL_BATCH_JOB,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    PLURAL_BATCH_JOBS,
    VERSION,
)
from mlkube.controllers import batch_job as sync
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import get_live
from mlkube.controllers.locks import KeyedLocks
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.metrics import BATCH_JOBS
from mlkube.handlers.periodic import LOOPS
from mlkube.handlers.serialized import reconcile_locked
from mlkube.k8s import ApiError

LOOP: Final = "batch-progress"
API_ERROR_DELAY: Final = 10.0
TERMINAL: Final = ("Succeeded", "Failed", "Cancelled")
LOCKS: Final = KeyedLocks()


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_reconcile(namespace: str, name: str) -> sync.Outcome:
    return reconcile_locked(
        KIND_BATCH_JOB, LOCKS, namespace, name,
        lambda: sync.reconcile(kube(), operator_config(), namespace, name, now_iso()),
        API_ERROR_DELAY,
    )  # fmt: skip


@kopf.on.resume(GROUP, VERSION, PLURAL_BATCH_JOBS)
@kopf.on.create(GROUP, VERSION, PLURAL_BATCH_JOBS)
@kopf.on.update(GROUP, VERSION, PLURAL_BATCH_JOBS, field="spec")
def reconcile_batch_job(namespace: str | None, name: str, **_: Any) -> None:
    run_reconcile(namespace or "default", name)


def progress_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """One poll: None (stop) once the job is gone or finished."""
    try:
        if get_live(kube(), API_VERSION, KIND_BATCH_JOB, name, namespace, uid) is None:
            return None
        outcome = run_reconcile(namespace, name)
    except (ApiError, ControllerError, kopf.TemporaryError) as err:
        logger.warning(f"BatchJob {name}: progress poll failed: {err}")
        return API_ERROR_DELAY
    return sync.POLL_SECONDS if outcome.poll else None


@kopf.on.event(GROUP, VERSION, PLURAL_BATCH_JOBS)
async def batch_job_lifecycle(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """Keep the progress loop running while the job is not finished."""
    phase = (body.get("status") or {}).get("phase")
    if type == "DELETED":
        BATCH_JOBS.gone(uid)
    else:
        BATCH_JOBS.seen(uid, namespace or "default", name, body.get("status"))
    if type == "DELETED" or body.metadata.get("deletionTimestamp") or phase in TERMINAL:
        LOOPS.stop(uid, LOOP)
        return
    tick = functools.partial(progress_tick, namespace or "default", name, uid, logger)
    LOOPS.ensure(uid, LOOP, tick, sync.POLL_SECONDS, logger)


@kopf.on.event(
    "batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_BATCH_JOB: kopf.PRESENT}
)
def batch_step_changed(
    type: str, meta: kopf.Meta, namespace: str | None, logger: kopf.Logger, **_: Any
) -> None:
    """A plan, score or merge Job moved (or was deleted): take the next step now."""
    owner = controller_owner(meta, KIND_BATCH_JOB)
    if owner is None or namespace is None or type == "DELETED":
        return
    try:
        run_reconcile(namespace, owner)
    except kopf.TemporaryError as err:
        logger.warning(f"BatchJob {owner}: reacting to Job {meta.get('name')} failed: {err}")
