"""A bounded, thread-safe memo: the last value per name, valid while its fingerprint holds.

The operator re-reads a store file or recomputes a digest only when the listing entry it came
from changed (batch progress files in batch_store, pipeline input digests in pipeline_store):
both keep the value with the fingerprint it was read at, and drop the least recently used
name first so a long-running operator's memory stays bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class FingerprintMemo(Generic[V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[object, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, fingerprint: object) -> V | None:
        """The value recorded for `name` at this fingerprint, None when none or stale."""
        with self._lock:
            hit = self._items.get(name)
            if hit is None or hit[0] != fingerprint:
                return None
            self._items.move_to_end(name)
            return hit[1]

    def put(self, name: str, fingerprint: object, value: V) -> None:
        with self._lock:
            self._items[name] = (fingerprint, value)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
