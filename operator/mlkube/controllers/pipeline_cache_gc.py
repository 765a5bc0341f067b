"""Garbage collection of the step cache (docs/pipelines.md §3), run from the Pipeline loop.

Entries `<artifactStore>/<namespace>/_mlkube/pipeline-cache/<key>.json` record when they were
made (`created`) and how long their step trusts them (`maxAgeSeconds`, written by
controllers/pipeline_cache.py); an entry past that age can never be a hit again, so it is
deleted. The cached outputs themselves stay: they belong to the run that produced them.

Bounded: per store and namespace at most one pass every `INTERVAL`, and per pass at most
`MAX_READS` entries read and `MAX_DELETES` deleted, continuing after the last name examined
next time (a cursor), so a cache of a million entries costs each pass the same. An entry read
once is not read again while its listing stamp (ETag, mtime, size) is unchanged: its expiry
is remembered. A GC racing a run that rewrites an entry can at worst delete a fresh entry —
a later cache miss, never a wrong hit (a hit re-verifies the outputs).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import pipeline_store as store
from mlkube.controllers.pipeline_cache import cache_root
from mlkube.reconcile.pipeline_trigger import parse_stamp
from mlkube.storage.errors import StorageError
from mlkube.storage.transfer import translated_errors

INTERVAL: Final = dt.timedelta(minutes=10)
MAX_READS: Final = 50
MAX_DELETES: Final = 50
DEFAULT_MAX_AGE: Final = dt.timedelta(days=30)  # the step default, for an entry without one
_KNOWN_SIZE: Final = 50_000


@dataclass
class Collected:
    deleted: list[str] = field(default_factory=list)
    examined: int = 0
    error: str | None = None


def expiry(entry: object) -> dt.datetime | None:
    """When a cache entry document stops being usable, None when it says nothing usable."""
    if not isinstance(entry, dict):
        return None
    created = parse_stamp(entry.get("created"))
    if created is None:
        return None
    seconds = entry.get("maxAgeSeconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return created + dt.timedelta(seconds=min(float(seconds), 3650 * 86400.0))
    return created + DEFAULT_MAX_AGE


class CacheCollector:
    """Process-wide GC state per (store, namespace): last pass, cursor, known expiries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], dt.datetime] = {}
        self._cursor: dict[tuple[str, str], str] = {}
        self._known: OrderedDict[str, tuple[str, dt.datetime | None]] = OrderedDict()

    def claim(self, artifact_store: str, namespace: str, now: dt.datetime) -> bool:
        """True when a pass is due for this store and namespace (and marks it started)."""
        key = (artifact_store.rstrip("/"), namespace)
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < INTERVAL:
                return False
            self._last[key] = now
            return True

    def collect(
        self, artifact_store: str, namespace: str, config: OperatorConfig, now: dt.datetime
    ) -> Collected:
        """One bounded pass; store errors end it (reported, retried at the next pass)."""
        key = (artifact_store.rstrip("/"), namespace)
        done = Collected()
        try:
            self._pass(key, artifact_store, namespace, config, now, done)
        except (store.StoreUnreadable, StorageError) as err:
            done.error = str(err)
        return done

    def _pass(
        self, key: tuple[str, str], artifact_store: str, namespace: str,
        config: OperatorConfig, now: dt.datetime, done: Collected,
    ) -> None:  # fmt: skip
        root = cache_root(artifact_store, namespace)
        with translated_errors("collect the cache in", root):  # botocore's errors too
            files = store.list_files(cache_root(artifact_store, namespace), namespace, config)
            entries = [(u, s) for u, s in files if u.endswith(".json")]
            cursor = self._cursor.get(key, "")
            ordered = [e for e in entries if e[0] > cursor] + [e for e in entries if e[0] <= cursor]
            reads = 0
            for uri, stamp in ordered:
                if reads >= MAX_READS or len(done.deleted) >= MAX_DELETES:
                    break
                done.examined += 1
                self._cursor[key] = uri
                expires, was_read = self._expiry(uri, stamp, namespace, config)
                reads += was_read
                if expires is not None and expires <= now and store.delete(uri, namespace, config):
                    done.deleted.append(uri)
                    self._forget(uri)

    def _expiry(
        self, uri: str, stamp: str, namespace: str, config: OperatorConfig
    ) -> tuple[dt.datetime | None, bool]:
        with self._lock:
            known = self._known.get(uri)
        if known is not None and known[0] == stamp:
            return known[1], False
        expires = expiry(store.read_json(uri, namespace, config))
        with self._lock:
            self._known[uri] = (stamp, expires)
            while len(self._known) > _KNOWN_SIZE:
                self._known.popitem(last=False)
        return expires, True

    def _forget(self, uri: str) -> None:
        with self._lock:
            self._known.pop(uri, None)


COLLECTOR: Final = CacheCollector()
