"""One reconcile call of a controller, as the BatchJob and PipelineRun handlers make it.

The call runs under the kind's reconcile metrics and the object's lock (so the handler, its
loop and its Job events never reconcile one object at once inside the process); API and
controller errors become a kopf.TemporaryError with a delay; the Events the controller
decided are emitted on the object it returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

import kopf

from mlkube.controllers.errors import ControllerError
from mlkube.controllers.locks import KeyedLocks
from mlkube.handlers.metrics import reconciling
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
    if outcome.subject is not None:
        for type_, reason, message in outcome.events:
            kopf.event(kopf.Body(cast(kopf.RawBody, outcome.subject)), type=type_,
                       reason=reason, message=message)  # fmt: skip
    return outcome
