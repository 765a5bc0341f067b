"""The Lease I/O of leader election (decisions: `mlkube.reconcile.leader_lease`).

Blocking calls through the `Kube` protocol, run by `mlkube.handlers.leadership` in a thread.
A lost race (409: another replica wrote the Lease between our read and our write) is no error:
this replica is simply not the leader this round.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable

from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.leader_lease import (
    LEASE_API_VERSION,
    LeaseTiming,
    Observation,
    release_patch,
    step,
)

log = logging.getLogger(__name__)


def _wall() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Elector:
    """One replica's view of the Lease; `attempt()` once per retry period."""

    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        namespace: str,
        identity: str,
        timing: LeaseTiming,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _wall,
    ) -> None:
        self.kube, self.name, self.namespace = kube, name, namespace
        self.identity, self.timing = identity, timing
        self._clock, self._wall = clock, wall
        self._seen: Observation | None = None
        self.leading = False
        self.last_renewed: float | None = None  # monotonic, last successful write as holder

    def attempt(self) -> bool:
        """One round: True when this replica holds the Lease now (acquired or renewed)."""
        lease = self.kube.get(LEASE_API_VERSION, "Lease", self.name, self.namespace)
        decision = step(
            lease, name=self.name, namespace=self.namespace, identity=self.identity,
            timing=self.timing, seen=self._seen, mono_now=self._clock(), wall_now=self._wall(),
        )  # fmt: skip
        self._seen = decision.observation
        if decision.write is None:
            self.leading = False
            return False
        try:
            if lease is None:
                self.kube.create(decision.write, field_manager="mlkube-operator")
            else:
                self.kube.patch(
                    LEASE_API_VERSION, "Lease", self.name, decision.write, self.namespace,
                    field_manager="mlkube-operator",
                )  # fmt: skip
        except ApiError as err:
            if err.status != 409:
                raise
            self.leading = False
            return False
        if not self.leading:
            log.info(f"leader election: {self.identity} holds Lease {self.namespace}/{self.name}")
        self.leading = True
        self.last_renewed = self._clock()
        return True

    def expired(self) -> bool:
        """The holder could not renew within the renew deadline: it must stop leading."""
        if self.last_renewed is None:
            return False
        return self._clock() - self.last_renewed > self.timing.renew_deadline

    def release(self) -> bool:
        """Hand the Lease over (graceful stop); False when it was not ours (or is gone)."""
        lease = self.kube.get(LEASE_API_VERSION, "Lease", self.name, self.namespace)
        patch = release_patch(lease, self.identity, self._wall()) if lease else None
        if patch is None:
            return False
        try:
            self.kube.patch(
                LEASE_API_VERSION, "Lease", self.name, patch, self.namespace,
                field_manager="mlkube-operator",
            )  # fmt: skip
        except ApiError as err:
            if err.status != 409:
                raise
            return False
        self.leading = False
        return True
