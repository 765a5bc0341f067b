"""BatchEndpoint handlers: one periodic loop per endpoint runs `controllers.batch_endpoint`
(schedules, Model readiness, status) and sleeps until the next scheduled time.

Watch events only start, restart ("kick") and stop the loop: a spec change (new generation)
re-evaluates at once, so does a change of a used Model's readiness and a scheduled BatchJob
finishing (history limits, Forbid). No Kopf timer, no `on.delete`, so no finalizer: with the
operator absent a BatchEndpoint and its namespace can still be deleted; the Models forget an
endpoint on its DELETED event, or through their own repair loop (handlers/model.py).
One lock per endpoint: a kicked loop never runs a pass beside the one it replaced.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import Collection
from typing import Any, Final

import kopf

from mlkube.contract import (
    GROUP,
    KIND_BATCH_ENDPOINT,
    LABEL_SCHEDULE,
    PLURAL_BATCH_ENDPOINTS,
    PLURAL_BATCH_JOBS,
    PLURAL_MODELS,
    VERSION,
)
from mlkube.controllers import batch_endpoint as controller
from mlkube.controllers.endpoint_users import USERS, used_models
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.locks import KeyedLocks
from mlkube.handlers.clients import kube
from mlkube.handlers.periodic import LOOPS, restart, run_pass
from mlkube.k8s import ApiError
from mlkube.reconcile.batch_schedule_jobs import TERMINAL_PHASES

JOB: Final = "batch-schedules"
API_ERROR_DELAY: Final = 10.0
LOCKS: Final = KeyedLocks()
# Last seen per uid, so that only real changes kick a loop (our own writes cause events too).
_GENERATIONS: Final[dict[str, int]] = {}
_MODEL_STATES: Final[dict[str, str]] = {}
_JOB_PHASES: Final[dict[str, str]] = {}
# uid -> (namespace, name, Models its deployments use), from the watch: which endpoints a
# Model change concerns, without a LIST per Model event.
_USERS: Final[dict[str, tuple[str, str, frozenset[str]]]] = {}


def tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    def one_pass(now: datetime.datetime) -> controller.Outcome:
        return controller.reconcile(kube(), namespace, name, uid, now)

    return run_pass(KIND_BATCH_ENDPOINT, LOCKS, namespace, name, one_pass, logger, API_ERROR_DELAY)


def kick(namespace: str, name: str, uid: str, logger: kopf.Logger | Any) -> None:
    """Run a pass now (a running pass finishes first: the lock), then follow its schedule."""
    restart(uid, JOB, functools.partial(tick, namespace, name, uid, logger), logger)


@kopf.on.event(GROUP, VERSION, PLURAL_BATCH_ENDPOINTS)
async def batch_endpoint_lifecycle(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    namespace = namespace or "default"
    USERS.observe(KIND_BATCH_ENDPOINT, namespace, name, None if type == "DELETED" else body)
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        LOOPS.stop(uid)
        _GENERATIONS.pop(uid, None)
        _USERS.pop(uid, None)
        if type == "DELETED":
            await asyncio.to_thread(release, namespace, logger, used_models(body))
        return
    _USERS[uid] = (namespace, name, used_models(body))
    generation = int(body.metadata.get("generation") or 0)
    if _GENERATIONS.get(uid) != generation or JOB not in LOOPS.running(uid):
        _GENERATIONS[uid] = generation
        kick(namespace, name, uid, logger)


def release(namespace: str, logger: kopf.Logger, models: Collection[str] = ()) -> None:
    try:
        controller.release(kube(), namespace, models)
    except (ApiError, ControllerError) as err:
        logger.warning(f"releasing Models after deletion failed: {err}")


@kopf.on.event(GROUP, VERSION, PLURAL_MODELS)
async def model_readiness_changed(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """A Model became Ready, failed or went away: the BatchEndpoints using it look now."""
    status = body.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    state = "gone" if type == "DELETED" else f"{status.get('phase')}/{ready}"
    if _MODEL_STATES.get(uid) == state or namespace is None:
        return
    if type == "DELETED":
        _MODEL_STATES.pop(uid, None)
    else:
        _MODEL_STATES[uid] = state
    for endpoint_uid, (ns, endpoint, models) in list(_USERS.items()):
        if ns == namespace and name in models:
            kick(namespace, endpoint, endpoint_uid, logger)


@kopf.on.event(GROUP, VERSION, PLURAL_BATCH_JOBS, labels={LABEL_SCHEDULE: kopf.PRESENT})
async def scheduled_job_changed(
    type: str, body: kopf.Body, namespace: str | None, uid: str, logger: kopf.Logger, **_: Any
) -> None:
    """A scheduled BatchJob finished: its endpoint trims the history now, not at the next fire."""
    phase = str((body.get("status") or {}).get("phase") or "")
    if type == "DELETED":
        _JOB_PHASES.pop(uid, None)
        return
    if phase not in TERMINAL_PHASES:
        _JOB_PHASES.pop(uid, None)  # seen terminal again later (a status rewritten): kick again
        return
    if _JOB_PHASES.get(uid) == phase or namespace is None:
        return
    _JOB_PHASES[uid] = phase
    for ref in body.metadata.get("ownerReferences") or []:
        if ref.get("kind") == KIND_BATCH_ENDPOINT and ref.get("controller"):
            kick(namespace, str(ref.get("name")), str(ref.get("uid")), logger)
