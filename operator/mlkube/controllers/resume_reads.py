"""A restart's resume passes read their children from LISTs shared by a batch of endpoints.

A pass lists the endpoint's children by label, one LIST per kind. The API server has no label
index: it answers a labelled LIST by scanning every object of that kind in the namespace, so
with N endpoints in a namespace each LIST costs O(N) and a restart, which resumes all N at
once, O(N²). At 1,000 endpoints one endpoint's LIST of Pods scanned 4,000 Pods (~10 ms of API
server CPU) and a pass's six LISTs ~20 ms: most of a restart's time
(docs/benchmarks/operator-scale.md, "Fourteenth session").

Kopf resumes the endpoints in about the order they were first seen here (`expect`). The first
resume pass of a batch lists each kind once for itself and the next BATCH - 1 endpoints still
waiting (`mlkube.dev/endpoint in (...)`); every pass of the batch then takes its share, which
answers its labelled LISTs (`SharedLists`) with what its own LISTs would have returned, until
the pass writes an object of that kind. A share is taken once, within MAX_AGE seconds of its
LISTs' start, or dropped. The watched kinds keep it exact: a Deployment or Pod event at another
version than the share holds drops it (`changed`), so the pass lists for itself. What it can
miss is an edit of an unwatched child (a Service, a ConfigMap) in those seconds, which the next
resync repairs as it repairs an edit made just after any pass. Only resume passes use this: a
spec change lists afresh, and resyncs are spread over their period, not a burst.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from mlkube.builders.endpoint import CHILD_KINDS
from mlkube.contract import FIELD_MANAGER, LABEL_ENDPOINT
from mlkube.controllers.kube import ApiError, Kube

BATCH: Final = 10  # endpoints per shared LIST: its parsed objects are a short burst of memory
AHEAD: Final = 20  # a batch is listed ahead once fewer shares are left (16 handler threads)
MAX_AGE: Final = 10.0  # seconds a share may wait for its pass
# The kinds a pass lists by label: its children (read_children; Secrets are read by name) and
# the Pods its status reads.
KINDS: Final = (("v1", "Pod"), *((av, kind) for av, kind in CHILD_KINDS if kind != "Secret"))

Share = dict[tuple[str, str], bytes]  # (apiVersion, kind) -> the endpoint's items, as JSON

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Made:
    at: float  # when its LISTs began
    share: Share
    versions: dict[tuple[str, str], str]  # (kind, name) -> resourceVersion as listed


class ResumeBatches:
    """Endpoints waiting for their first pass, and the shares of LISTs made for them."""

    def __init__(
        self, batch: int = BATCH, max_age: float = MAX_AGE, ahead: int = AHEAD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.batch, self.max_age, self.ahead, self._clock = batch, max_age, ahead, clock
        self._lock = threading.Lock()  # the fields below
        self._building = threading.Lock()  # one batch's LISTs at a time
        self._waiting: dict[str, dict[str, None]] = {}  # namespace -> labels, in seen order
        self._shares: dict[tuple[str, str], _Made] = {}
        self._failed_until = -math.inf  # after a failed batch LIST: passes list alone
        self.counts = {"shared": 0, "batches": 0, "own": 0}
        self.on_drained: Callable[[], None] | None = None

    def expect(self, namespace: str, label: str) -> None:
        """The endpoint (its `mlkube.dev/endpoint` label value) was first seen: its first
        pass is to come, at a restart a resume pass in this order."""
        with self._lock:
            self._waiting.setdefault(namespace, {})[label] = None

    def forget(self, namespace: str, label: str) -> None:
        """The endpoint's first pass ran without a share (a creation, a spec change) or it is
        gone: leave it out of batches and drop a share made for it."""
        with self._lock:
            self._unwait(namespace, label)
            self._shares.pop((namespace, label), None)

    def changed(
        self, namespace: str, label: str, kind: str, name: str, version: str | None
    ) -> None:
        """A watch event of one of the endpoint's children (`version` None: deleted): a share
        holding that child at another version, or not at all, is no longer what the pass's
        own LIST would return, so the pass lists for itself. A restart's listing events carry
        the versions the shares hold: they keep them."""
        with self._lock:
            made = self._shares.get((namespace, label))
            if made is not None and made.versions.get((kind, name)) != version:
                del self._shares[namespace, label]

    def take(self, kube: Kube, namespace: str, label: str) -> Share | None:
        """This resume pass's share of the batch's LISTs (listed now with the next waiting
        endpoints when there is none); None: the pass lists for itself (a batch LIST failed
        less than MAX_AGE ago). A pass that takes a share while fewer than AHEAD are left
        lists the next batch, so the other handler threads do not wait for it."""
        share = self._pop(namespace, label)
        if share is not None:
            if self._building.acquire(blocking=False):
                try:
                    self._build(kube, namespace, None)
                finally:
                    self._building.release()
            return share
        with self._building:  # others of this batch wait here for it, not list for themselves
            share = self._pop(namespace, label)
            if share is not None:
                return share
            with self._lock:
                self._unwait(namespace, label)
            made = self._build(kube, namespace, label)
            if made is None:
                with self._lock:
                    self.counts["own"] += 1
            return made

    def _build(self, kube: Kube, namespace: str, mine: str | None) -> Share | None:
        """Under `_building`: list a batch of `mine` (None: ahead of the passes, only when
        fewer than AHEAD shares are left) and the next waiting endpoints; `mine`'s share."""
        with self._lock:
            if self._clock() < self._failed_until:
                return None
            if mine is None and sum(ns == namespace for ns, _ in self._shares) >= self.ahead:
                return None
            labels = self._next_batch(namespace, mine)
        if not labels:
            return None
        began = self._clock()
        try:
            made = list_batch(kube, namespace, labels)
        except ApiError as err:
            log.warning("resume: listing children of %d endpoints failed: %s", len(labels), err)
            with self._lock:
                self._failed_until = self._clock() + self.max_age
            return None
        with self._lock:
            self.counts["batches"] += 1
            waiting = self._waiting.get(namespace, {})
            for other in labels:
                if other != mine and other in waiting:  # else forgotten meanwhile
                    self._shares[namespace, other] = _Made(began, *made[other])
            if mine is not None:
                self.counts["shared"] += 1
            self._drained()
        return made[mine][0] if mine is not None else None

    def _pop(self, namespace: str, label: str) -> Share | None:
        with self._lock:
            made = self._shares.pop((namespace, label), None)
            if made is None or self._clock() - made.at > self.max_age:
                return None  # still waiting: the next batch lists it afresh
            self._unwait(namespace, label)
            self.counts["shared"] += 1
            self._drained()
            return made.share

    def _drained(self) -> None:
        """Under the lock: the last share was taken, say how the resume went and hand the
        burst's freed memory back (`on_drained`)."""
        if not self._waiting and not self._shares and self.counts["batches"]:
            log.info("resume: %s", self.summary())
            if self.on_drained is not None:
                self.on_drained()

    def _next_batch(self, namespace: str, mine: str | None) -> list[str]:
        """Under the lock: `mine` and the next waiting endpoints of its namespace without a
        share (BATCH in all); expired shares go."""
        now = self._clock()
        for key in [k for k, made in self._shares.items() if now - made.at > self.max_age]:
            del self._shares[key]
        first = [mine] if mine is not None else []
        later = [
            other
            for other in self._waiting.get(namespace, {})
            if other != mine and (namespace, other) not in self._shares
        ]
        return first + later[: self.batch - len(first)]

    def _unwait(self, namespace: str, label: str) -> None:
        labels = self._waiting.get(namespace)
        if labels is not None:
            labels.pop(label, None)
            if not labels:
                del self._waiting[namespace]

    def summary(self) -> str:
        c = self.counts
        return (
            f"{c['shared']} passes read their children from {c['batches']} batches of LISTs, "
            f"{c['own']} listed for themselves"
        )


def list_batch(
    kube: Kube, namespace: str, labels: list[str]
) -> dict[str, tuple[Share, dict[tuple[str, str], str]]]:
    """One LIST per kind of the children of every endpoint in `labels`, by endpoint label:
    each endpoint's share and the versions of the objects in it. Each kind's items are kept
    as JSON at once: one kind's parsed LIST is alive at a time."""
    selector = f"{LABEL_ENDPOINT} in ({','.join(sorted(set(labels)))})"
    made: dict[str, tuple[Share, dict[tuple[str, str], str]]] = {
        label: ({}, {}) for label in labels
    }
    for api_version, kind in KINDS:
        try:
            items = kube.list(api_version, kind, namespace, label_selector=selector)
        except ApiError as err:
            if err.status in (403, 404):
                continue  # not served or not allowed: the pass lists it and learns the same
            raise
        grouped: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
        for item in items:
            meta = item.get("metadata") or {}
            label = (meta.get("labels") or {}).get(LABEL_ENDPOINT)
            if label in grouped:
                grouped[label].append(item)
                made[label][1][kind, str(meta.get("name"))] = str(meta.get("resourceVersion"))
        del items
        for label, mine in grouped.items():
            made[label][0][api_version, kind] = orjson.dumps(mine)
    return made


def equalities(selector: str | None) -> dict[str, str] | None:
    """`selector` as {key: value} when it is only `key=value` terms, else None."""
    if not selector:
        return None
    wanted: dict[str, str] = {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!") or value.startswith("=") or " " in term:
            return None
        wanted[key.strip()] = value
    return wanted


class SharedLists:
    """A Kube whose labelled LISTs of one endpoint's children answer from its share, until
    the pass writes an object of that kind (then it lists, to see its own writes)."""

    def __init__(self, inner: Kube, namespace: str, label: str, share: Share) -> None:
        self.inner, self.namespace, self.label, self.share = inner, namespace, label, share
        self.written: set[tuple[str, str]] = set()

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        listed = self.share.get((api_version, kind))
        wanted = equalities(label_selector)
        if (
            listed is None
            or (api_version, kind) in self.written
            or namespace != self.namespace
            or wanted is None
            or wanted.get(LABEL_ENDPOINT) != self.label
        ):
            return self.inner.list(api_version, kind, namespace, label_selector)
        items: list[dict[str, Any]] = orjson.loads(listed)
        return [i for i in items if _matches((i.get("metadata") or {}).get("labels"), wanted)]

    def apply(
        self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER, subresource: str = ""
    ) -> dict[str, Any]:
        self.written.add((obj["apiVersion"], obj["kind"]))
        return self.inner.apply(obj, field_manager, subresource)

    def create(self, obj: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        self.written.add((obj["apiVersion"], obj["kind"]))
        return self.inner.create(obj, field_manager)

    def patch(
        self, api_version: str, kind: str, name: str, patch: dict[str, Any],
        namespace: str | None = None, subresource: str = "", field_manager: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        self.written.add((api_version, kind))
        return self.inner.patch(api_version, kind, name, patch, namespace, subresource,
                                field_manager)  # fmt: skip

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None,
        propagation: str = "Background", uid: str | None = None,
    ) -> bool:  # fmt: skip
        self.written.add((api_version, kind))
        return self.inner.delete(api_version, kind, name, namespace, propagation, uid)

    def __getattr__(self, verb: str) -> Any:
        return getattr(self.inner, verb)  # reads as the inner client has them


def _matches(labels: dict[str, str] | None, wanted: dict[str, str]) -> bool:
    have = labels or {}
    return all(have.get(key) == value for key, value in wanted.items())
