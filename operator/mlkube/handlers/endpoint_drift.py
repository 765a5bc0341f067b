"""Drift monitoring of OnlineEndpoints: one polling loop per endpoint with drift enabled.

A loop of `mlkube.handlers.periodic`, not a Kopf daemon or timer: those put a finalizer on the
endpoint, which an absent operator would never remove (its namespace could not be deleted).
The loop starts and stops with the endpoint's watch events (drift enabled or not, deleted),
and ends by itself when a poll finds the endpoint gone. The interval comes from the operator's
configuration (`MLKUBE_DRIFT_POLL_INTERVAL_SECONDS`), read at every round; each evaluation runs
in a thread (API calls, concurrent HTTP polls) and never blocks the event loop.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Final, cast

import kopf

from mlkube.contract import API_VERSION, GROUP, KIND_ONLINE_ENDPOINT, VERSION
from mlkube.controllers.drift import evaluate_drift
from mlkube.controllers.drift_poll import BaselineCache, download_profile
from mlkube.controllers.errors import ControllerError
from mlkube.controllers.kube import get_live
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.endpoint import PLURAL, endpoint_lock
from mlkube.handlers.periodic import LOOPS
from mlkube.k8s import ApiError

# One cache per operator process: a profile is downloaded once, whatever polls it.
BASELINES: Final = BaselineCache(
    lambda uri, digest: download_profile(uri, digest, operator_config())
)
JOB: Final = "drift"


def monitors_drift(spec: kopf.Spec | dict[str, Any]) -> bool:
    return any((d.get("drift") or {}).get("enabled") for d in spec.get("deployments") or [])


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def drift_monitoring(
    type: str, body: kopf.Body, spec: kopf.Spec, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """Poll while a deployment enables drift and the endpoint lives."""
    deleting = type == "DELETED" or body.metadata.get("deletionTimestamp")
    if deleting or not monitors_drift(spec):
        LOOPS.stop(uid, JOB)
        return
    tick = functools.partial(drift_tick, namespace or "default", name, uid, logger)
    LOOPS.ensure(uid, JOB, tick, 0.0, logger)


def drift_tick(namespace: str, name: str, uid: str, logger: kopf.Logger) -> float | None:
    """One evaluation; the delay until the next one, None once the endpoint is gone."""
    config = operator_config()
    try:
        if get_live(kube(), API_VERSION, KIND_ONLINE_ENDPOINT, name, namespace, uid) is None:
            return None
        outcome = evaluate_drift(kube(), config, namespace, name, BASELINES, endpoint_lock, utc_now)
    except (ApiError, ControllerError) as err:
        # Transient (API down or restarting, a conflict): the next round tries again.
        logger.warning(f"drift evaluation failed: {err}")
        return config.drift_poll_interval
    if outcome.subject is not None:
        body = kopf.Body(cast(kopf.RawBody, outcome.subject))
        for type_, reason, message in outcome.events:
            kopf.event(body, type=type_, reason=reason, message=message)
    return config.drift_poll_interval
