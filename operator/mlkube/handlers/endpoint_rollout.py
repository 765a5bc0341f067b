"""The rollout loop of OnlineEndpoints: one `handlers.periodic` loop (job `rollout`) per endpoint
while a rollout has something to do (docs/rollouts.md §7).

Started from the endpoint's watch events, as drift polling is (no Kopf timer: no finalizer):
when spec.rollout starts a new revision, while the rollout is Progressing or Paused, until an
aborted candidate is scaled down, and at once for a CLI request (`mlkube.dev/rollout-request`)
or a spec change, so an abort request does not wait for the next tick. The loop ends by
itself when a tick has nothing left to do (the controller returns no delay). Provider state
(previous router scrapes) lives in this process only: a restarted operator takes a fresh
baseline.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Final

import kopf
from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.contract import ANNOTATION_ROLLOUT_REQUEST, GROUP, KIND_ONLINE_ENDPOINT, VERSION
from mlkube.controllers.endpoint_rollout import ProviderMemory, read_request, rollout_pass
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.endpoint import LOCKS, PLURAL
from mlkube.handlers.periodic import LOOPS, restart, run_pass
from mlkube.reconcile.rollout_effective import read_rollout
from mlkube.reconcile.rollout_plan import revision

JOB: Final = "rollout"
ERROR_DELAY: Final = 5.0
MEMORY: Final = ProviderMemory()
# uid -> (generation, request annotation) that last (re)started the loop: a status write by
# the loop itself fires a watch event too, and must not restart it.
_SEEN: Final[dict[str, tuple[int, str]]] = {}


def wants_loop(body: kopf.Body) -> bool:
    """Whether the rollout of this endpoint has something to do now."""
    try:
        spec = OnlineEndpointSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        return False
    if spec.rollout is None:
        return False
    status = dict(body.get("status") or {})
    rollout = read_rollout(status)
    if rollout is None or rollout.revision != revision(spec):
        return True
    request = read_request((body.metadata.get("annotations") or {}).get(ANNOTATION_ROLLOUT_REQUEST))
    if request is not None and request.id != rollout.last_request:
        return True
    return rollout.phase in ("Progressing", "Paused") or (
        rollout.phase == "Aborted" and not rollout.scaled_down
    )


@kopf.on.event(GROUP, VERSION, PLURAL)
async def rollout_loop(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    """Run the rollout loop while there is something to do; at once on a new spec or request."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        LOOPS.stop(uid, JOB)
        MEMORY.forget(uid)
        _SEEN.pop(uid, None)
        return
    if not wants_loop(body):
        return  # a running loop ends by itself at its next tick
    tick = functools.partial(rollout_tick, namespace or "default", name, logger)
    trigger = (
        int(body.metadata.get("generation") or 0),
        str((body.metadata.get("annotations") or {}).get(ANNOTATION_ROLLOUT_REQUEST) or ""),
    )
    if _SEEN.get(uid) != trigger:
        _SEEN[uid] = trigger
        restart(uid, JOB, tick, logger)
        return
    LOOPS.ensure(uid, JOB, tick, 0.0, logger)


def rollout_tick(namespace: str, name: str, logger: kopf.Logger) -> float | None:
    """One pass under the endpoint's lock (shared with the reconcile handlers)."""

    def one_pass(now: datetime.datetime) -> Any:
        return rollout_pass(kube(), operator_config(), namespace, name, MEMORY, now)

    return run_pass(KIND_ONLINE_ENDPOINT, LOCKS, namespace, name, one_pass, logger, ERROR_DELAY)
