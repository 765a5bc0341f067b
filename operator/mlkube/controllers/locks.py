"""One lock per object inside the operator process.

A kind's handlers, periodic loops and watch reactions run in threads; serializing them per
object means a slow pass never prunes what a newer pass just applied, and a status write never
races the reconcile's own. Entries are reference-counted: a lock lives exactly while someone
holds or waits for it, so the map stays bounded without anyone "forgetting" a lock (forgetting
a lock another thread waits on would let a recreated same-name object run two passes at once,
and events arriving after the forget would recreate the entry for good).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], _Entry] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, namespace: str, name: str) -> Iterator[None]:
        key = (namespace, name)
        with self._guard:
            entry = self._locks.setdefault(key, _Entry())
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)
