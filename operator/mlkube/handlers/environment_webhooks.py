"""Admission webhooks for Environments (docs/environments.md §1): the DELETE guard (an
Environment that an endpoint deployment, batch deployment or pipeline step resolves to cannot be
deleted) and the refusal of new references to archived Environments (label
mlkube.dev/archived=true; existing references keep working).

Same pattern as the Model guard in handlers/webhooks.py: async handlers, the API calls in the
guard's own threads under a deadline shorter than the configuration's timeout, and every
failure allows the request (the configurations fail open too: builders/webhook_config.py).
Decisions are pure, in reconcile/environment_admission.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import kopf

from mlkube.builders.webhook_config import (
    ENVIRONMENT_DELETE_GUARD_WEBHOOK,
    ENVIRONMENT_REFERENCES_WEBHOOK,
    ENVIRONMENT_USER_PLURALS,
)
from mlkube.contract import (
    API_VERSION,
    GROUP,
    KIND_BATCH_ENDPOINT,
    KIND_ENVIRONMENT,
    KIND_ONLINE_ENDPOINT,
    KIND_PIPELINE,
    LABEL_ARCHIVED,
    PLURAL_ENVIRONMENTS,
    VERSION,
)
from mlkube.handlers import webhooks
from mlkube.handlers.clients import kube
from mlkube.reconcile.environment_admission import (
    archived_message,
    new_references,
    references,
    users_of,
)

log = logging.getLogger(__name__)
ENVIRONMENT_USER_KINDS: Final = (KIND_ONLINE_ENDPOINT, KIND_BATCH_ENDPOINT, KIND_PIPELINE)


async def _in_guard_thread(func: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(webhooks.GUARD_EXECUTOR, func, *args)
    return await asyncio.wait_for(work, webhooks.GUARD_SECONDS)


@kopf.on.validate(
    GROUP, VERSION, PLURAL_ENVIRONMENTS, id=ENVIRONMENT_DELETE_GUARD_WEBHOOK, operations=["DELETE"]
)
async def guard_environment_delete(body: kopf.Body, userinfo: kopf.UserInfo, **_: Any) -> None:
    """Refuse to delete an Environment that a deployment or step resolves to, naming them;
    fail open like the Model guard when the users cannot be listed in time."""
    if userinfo.get("username") in webhooks.EXEMPT_DELETERS:
        return
    name, namespace = body["metadata"]["name"], body["metadata"].get("namespace")
    try:
        users = await _in_guard_thread(_environment_users, dict(body), namespace)
    except Exception as err:  # any failure (API error, no connection, deadline): allow
        log.warning(f"Environment delete guard cannot list users, {namespace}/{name} allowed: "
                    f"{err!r}")  # fmt: skip
        return
    if users:
        spec = body.get("spec") or {}
        raise kopf.AdmissionError(
            f"Environment {namespace}/{name} ({spec.get('environmentName')}:"
            f"{spec.get('version')}) is used by {', '.join(users)}: point them at another"
            f" environment (or delete them) first; archive it (label {LABEL_ARCHIVED}=true)"
            " to stop new use without breaking them",
            code=409,
        )


def _environment_users(environment: dict[str, Any], namespace: str | None) -> list[str]:
    refs = [
        ref
        for kind in ENVIRONMENT_USER_KINDS
        for obj in kube().list(API_VERSION, kind, namespace)
        for ref in references(kind, obj)
    ]
    if not refs:
        return []
    return users_of(environment, kube().list(API_VERSION, KIND_ENVIRONMENT, namespace), refs)


_KIND_OF: Final = dict(zip(ENVIRONMENT_USER_PLURALS, ENVIRONMENT_USER_KINDS, strict=True))


def _register_reference_check() -> None:
    # One handler id (one webhook path) for the three kinds that reference environments.
    for plural in ENVIRONMENT_USER_PLURALS:
        kopf.on.validate(
            GROUP, VERSION, plural, id=ENVIRONMENT_REFERENCES_WEBHOOK,
            operations=["CREATE", "UPDATE"],
        )(refuse_archived_references)  # fmt: skip


async def refuse_archived_references(
    resource: kopf.Resource,
    new: kopf.Body | None = None,
    old: kopf.Body | None = None,
    **_: Any,
) -> None:
    """Refuse a write that adds a reference to an archived Environment (existing references
    stay); fail open when the Environments cannot be read in time."""
    if new is None:
        return
    kind = _KIND_OF.get(resource.plural, resource.plural)
    refs = new_references(kind, dict(new), dict(old) if old is not None else None)
    if not refs:
        return  # nothing new is referenced (most writes): no API call
    namespace = (new.get("metadata") or {}).get("namespace")
    try:
        envs = await _in_guard_thread(kube().list, API_VERSION, KIND_ENVIRONMENT, namespace)
    except Exception as err:  # any failure: allow, like the guards
        log.warning(f"archived-environment check cannot list Environments, allowed: {err!r}")
        return
    message = archived_message(refs, envs)
    if message:
        raise kopf.AdmissionError(message, code=422)


_register_reference_check()
