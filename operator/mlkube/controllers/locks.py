"""One lock per object inside the operator process.

A kind's handlers, periodic loops and watch reactions run in threads; serializing them per
object means a slow pass never prunes what a newer pass just applied, and a status write never
races the reconcile's own. Locks of deleted objects are forgotten, so the map stays bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, namespace: str, name: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((namespace, name), threading.Lock())
        with lock:
            yield

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._locks.pop((namespace, name), None)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)
