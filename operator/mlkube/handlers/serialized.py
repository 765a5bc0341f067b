"""One reconcile call of a controller, as the BatchJob and PipelineRun handlers make it.

The call runs under the kind's reconcile metrics and the object's lock (so the handler, its
loop and its Job events never reconcile one object at once inside the process); API and
controller errors become a kopf.TemporaryError with a delay; the Events the controller
decided are posted on the object it returned (periodic.post_events, as the loops' passes do).
The loops' own pass body is periodic.run_pass: it logs and retries instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import kopf

from mlkube.controllers.errors import ControllerError
from mlkube.controllers.locks import KeyedLocks
from mlkube.handlers.metrics import reconciling
from mlkube.handlers.periodic import post_events
from mlkube.k8s import ApiError


class Reported(Protocol):
    @property
    def subject(self) -> Mapping[str, Any] | None: ...

    @property
    def events(self) -> Sequence[tuple[str, str, str]]: ...


OutcomeT = TypeVar("OutcomeT", bound=Reported)


def reconcile_locked(
    kind: str,
    locks: KeyedLocks,
    namespace: str,
    name: str,
    reconcile: Callable[[], OutcomeT],
    delay: float,
) -> OutcomeT:
    try:
        with reconciling(kind), locks.hold(namespace, name):
            outcome = reconcile()
    except (ApiError, ControllerError) as err:
        raise kopf.TemporaryError(f"reconcile failed: {err}", delay=delay) from err
    post_events(outcome.subject, outcome.events)
    return outcome
