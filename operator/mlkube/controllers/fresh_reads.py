"""A read shared by every caller that needs one started after a given moment.

Each Model checks its `deployedBy` against a LIST of the namespace's endpoints (on first sight,
then every few minutes). At operator start that is one LIST of N endpoints per Model: N² objects
decoded for N Models and endpoints in a namespace. The check is only correct with a LIST made
after the Model was read (an endpoint that added itself before the read is then in the LIST),
so callers cannot take any cached answer; but they can all take one LIST that *started* after
their own read. Only the latest answer per key is kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class FreshReads(Generic[T]):
    def __init__(self) -> None:
        self._latest: dict[Hashable, _Flight[T]] = {}
        self._guard = threading.Lock()

    def read(self, key: Hashable, after: float, fetch: Callable[[], T]) -> T:
        """`fetch()`'s answer from a call started at or after `after` (time.monotonic()):
        joins one in flight or done, else makes it (and others may join it)."""
        with self._guard:
            flight = self._latest.get(key)
            mine = flight is None or flight.started <= after or flight.error is not None
            if mine:
                flight = _Flight()
                self._latest[key] = flight
        assert flight is not None
        if mine:
            try:
                flight.value = fetch()
            except BaseException as err:
                flight.error = err
                raise
            finally:
                flight.done.set()
            return flight.value
        flight.done.wait()
        if flight.error is not None:
            return self.read(key, after, fetch)  # the shared call failed: make our own
        return flight.value  # type: ignore[return-value]
