"""Drift monitoring of OnlineEndpoints: one Kopf daemon per endpoint with drift enabled.

A daemon rather than `@kopf.timer`: the poll interval comes from the operator's configuration
(`MLKUBE_DRIFT_POLL_INTERVAL_SECONDS`), which a timer would freeze at import time. It is async
and sleeps on the event loop, so an idle endpoint holds no worker thread; each evaluation runs
in a thread (API calls, concurrent HTTP polls) and never blocks the loop. Kopf starts it when a
deployment enables drift and stops it when none does, or when the endpoint goes away.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Final, cast

import kopf

from mlkube.contract import GROUP, VERSION
from mlkube.controllers.drift import evaluate_drift
from mlkube.controllers.drift_poll import BaselineCache, download_profile
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.endpoint import PLURAL, endpoint_lock
from mlkube.k8s import ApiError

# One cache per operator process: a profile is downloaded once, whatever polls it.
BASELINES: Final = BaselineCache(
    lambda uri, digest: download_profile(uri, digest, operator_config())
)


def monitors_drift(spec: kopf.Spec, **_: Any) -> bool:
    return any((d.get("drift") or {}).get("enabled") for d in spec.get("deployments") or [])


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@kopf.daemon(GROUP, VERSION, PLURAL, when=monitors_drift, cancellation_timeout=5.0)
async def monitor_drift(
    stopped: kopf.DaemonStopped, namespace: str | None, name: str, logger: kopf.Logger, **_: Any
) -> None:
    """Evaluate drift every poll interval until Kopf stops the daemon."""
    namespace = namespace or "default"
    while not stopped:
        config = operator_config()
        try:
            outcome = await asyncio.to_thread(
                evaluate_drift,
                kube(),
                config,
                namespace,
                name,
                BASELINES,
                endpoint_lock,
                utc_now,
            )
        except ApiError as err:
            # Transient (API restart, conflict): the next round tries again.
            logger.warning(f"drift evaluation failed: {err}")
        except Exception:  # a monitor must outlive one bad round; the traceback says why
            logger.exception("drift evaluation failed unexpectedly; retrying next interval")
        else:
            if outcome.subject is not None:
                body = kopf.Body(cast(kopf.RawBody, outcome.subject))
                for type_, reason, message in outcome.events:
                    kopf.event(body, type=type_, reason=reason, message=message)
        await stopped.wait(config.drift_poll_interval)
