"""A restart's resume passes read their children from LISTs shared by a batch of endpoints.

A pass lists the endpoint's children by label, one LIST per kind. The API server has no label
index: it answers a labelled LIST by scanning every object of that kind in the namespace, so
with N endpoints in a namespace each LIST costs O(N) and a restart, which resumes all N at
once, O(N²). At 1,000 endpoints one endpoint's LIST of Pods scanned 4,000 Pods (~10 ms of API
server CPU) and a pass's six LISTs ~20 ms: most of a restart's time
(docs/benchmarks/operator-scale.md, "Fourteenth session").

Kopf resumes the endpoints in the order it listed them, the order they were first seen here
(`expect`). The first resume pass of a batch lists each kind once for itself and the next
BATCH - 1 endpoints still waiting (`mlkube.dev/endpoint in (...)`); every pass of the batch
then takes its share: what its own LISTs would have returned, as of at most MAX_AGE seconds
before, which is how stale an informer's cache may be too (a child deleted since is recreated
by the Deployment watch's reconcile or the next resync). An older share is dropped and the
pass lists for itself. Only resume passes use this: a spec change lists afresh, and resyncs are
spread over their period, not a burst.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from mlkube.builders.endpoint import CHILD_KINDS
from mlkube.contract import LABEL_ENDPOINT
from mlkube.controllers.kube import ApiError, Kube

BATCH: Final = 50  # endpoints per shared LIST: ~3.5 MB of children at most, parsed at once
MAX_AGE: Final = 10.0  # seconds a share may wait for its pass
# The kinds a pass lists by label: its children (read_children; Secrets are read by name) and
# the Pods its status reads.
KINDS: Final = (("v1", "Pod"), *((av, kind) for av, kind in CHILD_KINDS if kind != "Secret"))

Share = dict[tuple[str, str], bytes]  # (apiVersion, kind) -> the endpoint's items, as JSON

log = logging.getLogger(__name__)


class ResumeBatches:
    """Endpoints waiting for their first pass, and the shares of LISTs made for them."""

    def __init__(
        self, batch: int = BATCH, max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.batch, self.max_age, self._clock = batch, max_age, clock
        self._lock = threading.Lock()  # the fields below
        self._building = threading.Lock()  # one batch's LISTs at a time
        self._waiting: dict[str, dict[str, None]] = {}  # namespace -> labels, in seen order
        self._shares: dict[tuple[str, str], tuple[float, Share]] = {}
        self.counts = {"shared": 0, "batches": 0, "own": 0}

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

    def take(self, kube: Kube, namespace: str, label: str) -> Share | None:
        """This resume pass's share of the batch's LISTs (listed now with the next waiting
        endpoints when there is none); None when the batch's LISTs failed."""
        share = self._pop(namespace, label)
        if share is not None:
            return share
        with self._building:  # others of this batch wait here for it, not list for themselves
            share = self._pop(namespace, label)
            if share is not None:
                return share
            labels = self._next_batch(namespace, label)
            try:
                made = list_batch(kube, namespace, labels)
            except ApiError as err:
                log.warning("resume: listing children of %d endpoints failed: %s", len(labels), err)
                with self._lock:
                    self.counts["own"] += 1
                return None  # the pass lists for itself
            now = self._clock()
            with self._lock:
                self.counts["batches"] += 1
                self.counts["shared"] += 1
                for other in labels[1:]:
                    self._shares[namespace, other] = (now, made.get(other, {}))
                self._drained()
            return made.get(label, {})

    def _pop(self, namespace: str, label: str) -> Share | None:
        with self._lock:
            self._unwait(namespace, label)
            made = self._shares.pop((namespace, label), None)
            if made is None or self._clock() - made[0] > self.max_age:
                return None
            self.counts["shared"] += 1
            self._drained()
            return made[1]

    def _drained(self) -> None:
        """Under the lock: the last share was taken, say how the resume went."""
        if not self._waiting and not self._shares and self.counts["batches"]:
            log.info("resume: %s", self.summary())

    def _next_batch(self, namespace: str, label: str) -> list[str]:
        """`label` and the next waiting endpoints of its namespace; expired shares go."""
        with self._lock:
            now = self._clock()
            for key in [k for k, (at, _) in self._shares.items() if now - at > self.max_age]:
                del self._shares[key]
            later = [
                other
                for other in self._waiting.get(namespace, {})
                if other != label and (namespace, other) not in self._shares
            ]
            return [label, *later[: self.batch - 1]]

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


def list_batch(kube: Kube, namespace: str, labels: list[str]) -> dict[str, Share]:
    """One LIST per kind of the children of every endpoint in `labels`, by endpoint label.
    Each kind's items are kept as JSON at once: one kind's parsed LIST is alive at a time."""
    selector = f"{LABEL_ENDPOINT} in ({','.join(sorted(set(labels)))})"
    shares: dict[str, Share] = {label: {} for label in labels}
    for api_version, kind in KINDS:
        try:
            items = kube.list(api_version, kind, namespace, label_selector=selector)
        except ApiError as err:
            if err.status in (403, 404):
                continue  # not served or not allowed: the pass lists it and learns the same
            raise
        grouped: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
        for item in items:
            label = ((item.get("metadata") or {}).get("labels") or {}).get(LABEL_ENDPOINT)
            if label in grouped:
                grouped[label].append(item)
        del items
        for label, mine in grouped.items():
            shares[label][api_version, kind] = orjson.dumps(mine)
    return shares


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
    """A Kube whose labelled LISTs of one endpoint's children answer from its share."""

    def __init__(self, inner: Kube, namespace: str, label: str, share: Share) -> None:
        self.inner, self.namespace, self.label, self.share = inner, namespace, label, share

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
            or namespace != self.namespace
            or wanted is None
            or wanted.get(LABEL_ENDPOINT) != self.label
        ):
            return self.inner.list(api_version, kind, namespace, label_selector)
        items: list[dict[str, Any]] = orjson.loads(listed)
        return [i for i in items if _matches((i.get("metadata") or {}).get("labels"), wanted)]

    def __getattr__(self, verb: str) -> Any:
        return getattr(self.inner, verb)  # every other verb as the inner client has it


def _matches(labels: dict[str, str] | None, wanted: dict[str, str]) -> bool:
    have = labels or {}
    return all(have.get(key) == value for key, value in wanted.items())
