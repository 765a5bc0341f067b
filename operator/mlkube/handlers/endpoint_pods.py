"""OnlineEndpoint pod events: a failing serving or router pod shows on the endpoint at once.

Split from `mlkube.handlers.endpoint` (same lock and refresh); one refresh per new problem.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import kopf

from mlkube.builders.pod_problems import pod_problem
from mlkube.contract import LABEL_ENDPOINT, LABEL_MANAGED_BY, MANAGED_BY
from mlkube.controllers import endpoint as sync
from mlkube.controllers.errors import ControllerError
from mlkube.handlers.clients import kube
from mlkube.handlers.endpoint import RESUMES, refresh
from mlkube.k8s import ApiError

# Pod uid -> the problem last reported, so a pod that keeps failing the same way (a crash loop
# emits an event per restart) costs one status refresh, not one per event.
_POD_PROBLEMS: Final[dict[str, str]] = {}


@kopf.on.event(
    "", "v1", "pods", labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_ENDPOINT: kopf.PRESENT}
)
async def child_pod_changed(
    type: str, body: kopf.Body, meta: kopf.Meta, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """A serving or router pod fails (an initializer refusing an artifact, an image that cannot
    be pulled, a crash loop): show why on the endpoint now, not at the rollout deadline.
    Recovery needs no pod event: the Deployment turning available refreshes the status.
    Asynchronous: almost every pod event changes no problem and must not cost a thread hop
    (3 pods per endpoint, several events each)."""
    label = str((meta.get("labels") or {}).get(LABEL_ENDPOINT, ""))
    if namespace is not None and label:  # a resume share holding another version is dropped
        version = None if type == "DELETED" else meta.get("resourceVersion")
        RESUMES.changed(namespace, label, "Pod", str(meta.get("name")), version)
    problem = pod_problem(body) if type != "DELETED" else None
    text = problem.message if problem else ""
    if _POD_PROBLEMS.get(uid, "") == text:
        return
    if text:
        _POD_PROBLEMS[uid] = text
    else:
        _POD_PROBLEMS.pop(uid, None)
    if namespace is None or not label:
        return
    try:
        await asyncio.to_thread(refresh_labelled, namespace, label)
    except (ApiError, ControllerError, kopf.TemporaryError) as err:
        _POD_PROBLEMS.pop(uid, None)  # try again on the next event
        logger.warning(f"OnlineEndpoint {label}: reacting to a pod change failed: {err}")


def refresh_labelled(namespace: str, label: str) -> None:
    endpoint = sync.endpoint_for_label(kube(), namespace, label)
    if endpoint is not None:
        refresh(namespace, endpoint)
