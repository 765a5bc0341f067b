"""Model handlers: Kopf wiring around `mlkube.controllers.model` (verify, status, Events)."""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from mlkube.builders.model_audit import changed_paths
from mlkube.contract import GROUP, PLURAL_MODELS, VERSION
from mlkube.controllers import model as controller
from mlkube.controllers.errors import ControllerError
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.webhooks import audit_key
from mlkube.k8s import ApiError
from mlkube.reconcile.audit_proof import with_trusted_stamps


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


@kopf.on.resume(GROUP, VERSION, PLURAL_MODELS)
@kopf.on.create(GROUP, VERSION, PLURAL_MODELS)
@kopf.on.update(GROUP, VERSION, PLURAL_MODELS, field="spec")
def reconcile_model(
    body: kopf.Body, patch: kopf.Patch, reason: str, diff: kopf.Diff, retry: int, **_: Any
) -> None:
    created = reason == kopf.Reason.CREATE
    changes = ["spec"] if created else changed_paths(diff) or ["spec"]
    try:
        outcome = controller.reconcile(
            kube(), operator_config(), with_trusted_stamps(body, audit_key()),
            created=created, changes=changes,
            now=controller.format_time(utc_now()), attempt=retry,
        )  # fmt: skip
    except (ApiError, ControllerError) as err:
        raise kopf.TemporaryError(str(err), delay=controller.JOB_ERROR_DELAY) from err
    report(body, patch, outcome)


def _verifying(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") == "Verifying"


@kopf.timer(GROUP, VERSION, PLURAL_MODELS, interval=2.0, when=_verifying)
def poll_verification_job(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Read the outcome of a pvc:// verification Job into the Model's status."""
    try:
        outcome = controller.poll_verification_job(kube(), operator_config(), body, utc_now())
    except (ApiError, ControllerError) as err:
        raise kopf.TemporaryError(str(err), delay=controller.JOB_ERROR_DELAY) from err
    report(body, patch, outcome)
