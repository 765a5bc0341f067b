"""Passes waiting for an object's lock: a status refresh that another waiting pass covers is
skipped.

Creating 1,000 endpoints makes ~10 Deployment and pod events each (created, scheduled, pods
ready, available), and each used to run its own status refresh (~5-10 requests) one after
another behind the endpoint's lock. A refresh or reconcile that has not started reading yet
reads after every event that arrived while it waited, so a new event needs no pass of its own
then. Nothing is lost: a pass stops counting as waiting the moment it holds the lock, before
its first read, so an event after that point finds no waiter and runs its own refresh.

A refresh asked for before a pass began reading is covered by that pass too once it completed
(`read_since`; a pass that raised covers nothing):
after a restart every endpoint's resume reconcile and its Deployments' listing events race,
and the refreshes queued behind the reconciles used to re-read everything they had just read.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Hashable


class Waiting:
    def __init__(self) -> None:
        self._waiting: Counter[Hashable] = Counter()
        self._read: dict[Hashable, float] = {}  # key -> when its last completed pass began reading
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

    def completed(self, key: Hashable, began: float) -> None:
        """A pass for `key` that began reading at `began` (`time.monotonic()`) completed."""
        with self._guard:
            self._read[key] = max(began, self._read.get(key, began))

    def read_since(self, key: Hashable, since: float) -> bool:
        """A completed pass for `key` began reading after `since` (`time.monotonic()`)."""
        with self._guard:
            return self._read.get(key, float("-inf")) > since

    def forget(self, key: Hashable) -> None:
        """The object is gone."""
        with self._guard:
            self._read.pop(key, None)

    def __len__(self) -> int:
        with self._guard:
            return len(self._waiting)
