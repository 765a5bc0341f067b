"""PipelineRun handlers: reconcile on create/update/resume and whenever one of its step Jobs
changes; while the run is not finished, a loop (handlers/periodic.py, no finalizer) reconciles
again when the controller asks (a retry's backoff ends, a step waits for another run's
identical step, a built-in step waits for its object).

The work lives in `mlkube.controllers.pipeline_run`; one lock per run serializes the handler,
the loop and Job events inside the process. Level-based: an operator restarted mid-run
resumes from the run, its snapshot and its Jobs (kopf.on.resume), never from memory.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Final

import kopf

from mlkube import contract as c
from mlkube.builders.names import controller_owner
from mlkube.contract import API_VERSION, GROUP, LABEL_MANAGED_BY, MANAGED_BY, VERSION
from mlkube.controllers import pipeline_run as sync
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import get_live
from mlkube.controllers.locks import KeyedLocks
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.periodic import LOOPS
from mlkube.handlers.serialized import reconcile_locked
from mlkube.k8s import ApiError

LOOP: Final = "pipeline-run"
API_ERROR_DELAY: Final = 10.0
TERMINAL: Final = ("Succeeded", "Failed", "Cancelled")
LOCKS: Final = KeyedLocks()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def run_reconcile(namespace: str, name: str) -> sync.Outcome:
    return reconcile_locked(
        c.KIND_PIPELINE_RUN, LOCKS, namespace, name,
        lambda: sync.reconcile(kube(), operator_config(), namespace, name, now()),
        API_ERROR_DELAY,
    )  # fmt: skip


@kopf.on.resume(GROUP, VERSION, c.PLURAL_PIPELINE_RUNS)
@kopf.on.create(GROUP, VERSION, c.PLURAL_PIPELINE_RUNS)
@kopf.on.update(GROUP, VERSION, c.PLURAL_PIPELINE_RUNS, field="spec")
def reconcile_pipeline_run(namespace: str | None, name: str, **_: Any) -> None:
    run_reconcile(namespace or "default", name)


def tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """One pass: None (stop) once the run is gone or finished."""
    try:
        if get_live(kube(), API_VERSION, c.KIND_PIPELINE_RUN, name, namespace, uid) is None:
            return None
        outcome = run_reconcile(namespace, name)
    except (ApiError, ControllerError, kopf.TemporaryError) as err:
        logger.warning(f"PipelineRun {name}: reconcile failed: {err}")
        return API_ERROR_DELAY
    return outcome.requeue_after


@kopf.on.event(GROUP, VERSION, c.PLURAL_PIPELINE_RUNS)
async def pipeline_run_lifecycle(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """Keep the loop running while the run is not finished (its ticks pick up what no event
    announces: the end of a backoff, another run's step finishing, a built-in step's object)."""
    phase = (body.get("status") or {}).get("phase")
    if type == "DELETED" or body.metadata.get("deletionTimestamp") or phase in TERMINAL:
        LOOPS.stop(uid, LOOP)
        return
    step = functools.partial(tick, namespace or "default", name, uid, logger)
    LOOPS.ensure(uid, LOOP, step, sync.POLL_SECONDS, logger)


@kopf.on.event(
    "batch", "v1", "jobs",
    labels={LABEL_MANAGED_BY: MANAGED_BY, c.LABEL_PIPELINE_RUN: kopf.PRESENT},
)  # fmt: skip
def pipeline_step_changed(
    type: str, meta: kopf.Meta, namespace: str | None, logger: kopf.Logger, **_: Any
) -> None:
    """A step Job moved: record its outcome and start what is ready now. A deleted Job (we
    cancelled it, or someone else did) is reconciled too: its step must not wait forever."""
    owner = controller_owner(meta, c.KIND_PIPELINE_RUN)
    if owner is None or namespace is None:
        return
    try:
        run_reconcile(namespace, owner)
    except kopf.TemporaryError as err:
        logger.warning(f"PipelineRun {owner}: reacting to Job {meta.get('name')} failed: {err}")
