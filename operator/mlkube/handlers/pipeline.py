"""Pipeline handlers: one periodic loop per Pipeline runs `controllers.pipeline` (references,
schedules, triggers, cache GC, status) and sleeps until something can happen next.

Watch events only start, restart ("kick") and stop the loop, and need no finalizer (no Kopf
timer, no `on.delete`): a spec change (new generation); a change of the drift episodes (or the
existence, or the drift settings) of an OnlineEndpoint an onDrift trigger watches — so a drift
episode starts its run within a second, looked up through an in-memory index of which
Pipelines watch which endpoints, not a LIST per endpoint event; and a PipelineRun of the
pipeline changing phase (run counts, Forbid, a trigger waiting for its run to end). The loop's
own resync is the safety net for any missed event. One lock per Pipeline: a kicked loop never
runs a pass beside the one it replaced.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Final

import kopf

from mlkube.contract import (
    GROUP,
    KIND_PIPELINE,
    PLURAL_ONLINE_ENDPOINTS,
    PLURAL_PIPELINE_RUNS,
    PLURAL_PIPELINES,
    VERSION,
)
from mlkube.controllers import pipeline as controller
from mlkube.controllers.locks import KeyedLocks
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.periodic import LOOPS, restart, run_pass

JOB: Final = "pipeline"
API_ERROR_DELAY: Final = 10.0
LOCKS: Final = KeyedLocks()
# Last seen per uid, so that only real changes kick a loop (our own writes cause events too).
_GENERATIONS: Final[dict[str, int]] = {}
_DRIFT_STATES: Final[dict[str, str]] = {}
_RUN_PHASES: Final[dict[str, str]] = {}
# Pipeline uid -> (namespace, name, OnlineEndpoints its onDrift triggers watch).
_WATCHERS: Final[dict[str, tuple[str, str, frozenset[str]]]] = {}


def tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    def one_pass(now: datetime.datetime) -> controller.Outcome:
        return controller.reconcile(kube(), operator_config(), namespace, name, uid, now)

    return run_pass(KIND_PIPELINE, LOCKS, namespace, name, one_pass, logger, API_ERROR_DELAY)


def kick(namespace: str, name: str, uid: str, logger: kopf.Logger | Any) -> None:
    """Run a pass now (a running pass finishes first: the lock), then follow its schedule."""
    restart(uid, JOB, functools.partial(tick, namespace, name, uid, logger), logger)


def drift_endpoints(spec: kopf.Spec | dict[str, Any]) -> frozenset[str]:
    triggers = spec.get("triggers") or []
    return frozenset(
        str(t["onDrift"]["endpoint"])
        for t in triggers
        if isinstance(t, dict)
        and isinstance(t.get("onDrift"), dict)
        and t["onDrift"].get("endpoint")
    )


@kopf.on.event(GROUP, VERSION, PLURAL_PIPELINES)
async def pipeline_lifecycle(
    type: str, body: kopf.Body, spec: kopf.Spec, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    namespace = namespace or "default"
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        LOOPS.stop(uid)
        _GENERATIONS.pop(uid, None)
        _WATCHERS.pop(uid, None)
        return  # its runs are owned by it: the garbage collector deletes them
    _WATCHERS[uid] = (namespace, name, drift_endpoints(spec))
    generation = int(body.metadata.get("generation") or 0)
    if _GENERATIONS.get(uid) != generation or JOB not in LOOPS.running(uid):
        _GENERATIONS[uid] = generation
        kick(namespace, name, uid, logger)


def drift_state(type: str, body: kopf.Body) -> str:
    """What of an endpoint an onDrift trigger reads: existence, drift settings, episodes."""
    if type == "DELETED":
        return "gone"
    enabled = sorted(
        str(d.get("name"))
        for d in (body.get("spec") or {}).get("deployments") or []
        if (d.get("drift") or {}).get("enabled")
    )
    episodes = sorted(
        (str(d.get("name")), str(((d.get("drift") or {}).get("episode") or {}).get("active")),
         str(((d.get("drift") or {}).get("episode") or {}).get("startedAt")))
        for d in (body.get("status") or {}).get("deployments") or []
    )  # fmt: skip
    return repr((enabled, episodes))


@kopf.on.event(GROUP, VERSION, PLURAL_ONLINE_ENDPOINTS)
async def endpoint_drift_changed(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """A drift episode started or ended (or the endpoint came or went): its watchers look now."""
    if namespace is None:
        return
    state = drift_state(type, body)
    if _DRIFT_STATES.get(uid) == state:
        return
    if type == "DELETED":
        _DRIFT_STATES.pop(uid, None)
    else:
        _DRIFT_STATES[uid] = state
    for pipeline_uid, (ns, pipeline, endpoints) in list(_WATCHERS.items()):
        if ns == namespace and name in endpoints:
            kick(ns, pipeline, pipeline_uid, logger)


@kopf.on.event(GROUP, VERSION, PLURAL_PIPELINE_RUNS)
async def pipeline_run_phase_changed(
    type: str, body: kopf.Body, namespace: str | None, uid: str, logger: kopf.Logger, **_: Any
) -> None:
    """A run of a pipeline started, changed phase or went: its Pipeline looks now."""
    phase = "gone" if type == "DELETED" else str((body.get("status") or {}).get("phase") or "")
    if _RUN_PHASES.get(uid) == phase or namespace is None:
        return
    if type == "DELETED":
        _RUN_PHASES.pop(uid, None)
    else:
        _RUN_PHASES[uid] = phase
    pipeline = (body.get("spec") or {}).get("pipeline")
    for pipeline_uid, (ns, name, _endpoints) in list(_WATCHERS.items()):
        if ns == namespace and name == pipeline:
            kick(ns, name, pipeline_uid, logger)
