"""An Environment became Ready (or changed): its waiting users reconcile now.

Endpoints, batch jobs and pipeline runs whose deployments or steps name an environment that
is still building wait with reason EnvironmentNotReady; without this they would notice only
at their next retry or resync. Any version counts (`name@latest` follows new versions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from mlkube.contract import (
    GROUP,
    KIND_BATCH_JOB,
    KIND_ONLINE_ENDPOINT,
    KIND_PIPELINE_RUN,
    PLURAL_ENVIRONMENTS,
    VERSION,
)
from mlkube.controllers.environment_refs import waiting_users
from mlkube.controllers.errors import ControllerError
from mlkube.handlers import batch_job, endpoint, pipeline_run
from mlkube.handlers.clients import kube
from mlkube.k8s import ApiError


@kopf.on.event(GROUP, VERSION, PLURAL_ENVIRONMENTS)
def environment_changed(
    type: str, spec: kopf.Spec, status: kopf.Status, namespace: str | None,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """Re-queue the users of a Ready Environment (a failed one leaves them waiting)."""
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    name = spec.get("environmentName")
    if type == "DELETED" or not ready or namespace is None or not isinstance(name, str):
        return
    runners: dict[str, Callable[[str, str], object]] = {
        KIND_ONLINE_ENDPOINT: endpoint.run_reconcile,
        KIND_BATCH_JOB: batch_job.run_reconcile,
        KIND_PIPELINE_RUN: pipeline_run.run_reconcile,
    }
    try:
        for kind, names in waiting_users(kube(), namespace, name).items():
            for user in names:
                runners[kind](namespace, user)
    except (ApiError, ControllerError, kopf.TemporaryError) as err:
        logger.warning(f"reconciling the users of Environment {name} failed: {err}")
