"""Passes waiting for an object's lock: a status refresh that another waiting pass covers is
skipped.

Creating 1,000 endpoints makes ~10 Deployment and pod events each (created, scheduled, pods
ready, available), and each used to run its own status refresh (~5-10 requests) one after
another behind the endpoint's lock. A refresh or reconcile that has not started reading yet
reads after every event that arrived while it waited, so a new event needs no pass of its own
then. Nothing is lost: a pass stops counting as waiting the moment it holds the lock, before
its first read, so an event after that point finds no waiter and runs its own refresh.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Hashable


class Waiting:
    def __init__(self) -> None:
        self._waiting: Counter[Hashable] = Counter()
        self._guard = threading.Lock()

    def covered(self, key: Hashable) -> bool:
        """A pass for `key` is waiting and has not read anything yet."""
        with self._guard:
            return self._waiting[key] > 0

    def claim(self, key: Hashable) -> bool:
        """Wait as the refresh for `key`; False (do nothing) if another pass already waits."""
        with self._guard:
            if self._waiting[key] > 0:
                return False
            self._waiting[key] += 1
            return True

    def add(self, key: Hashable) -> None:
        """A pass that must run anyway (a reconcile) waits for `key`."""
        with self._guard:
            self._waiting[key] += 1

    def done(self, key: Hashable) -> None:
        """The pass holds the lock now (or gave up): it no longer covers new events."""
        with self._guard:
            self._waiting[key] -= 1
            if self._waiting[key] <= 0:
                del self._waiting[key]

    def __len__(self) -> int:
        with self._guard:
            return len(self._waiting)
