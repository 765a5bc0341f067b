"""Operator-wide Kopf settings (DESIGN.md §5.9) and login.

Timeouts are explicit so a silently dead watch is noticed; progress and diff-base are kept in
`mlkube.dev/` annotations (never in spec) so GitOps tools never see the operator touch their fields.
The diff-base is compacted (`mlkube.reconcile.essence`) and handler error messages in progress
records are bounded: a CRD-valid object can hold more than the 256 KiB all annotations share,
and an oversized annotation would fail every patch of the object.
"""

from __future__ import annotations

import asyncio.sslproto
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf
import orjson
from kopf._cogs.clients import api as kopf_api

from mlkube.api.common import bound_message
from mlkube.contract import GROUP, LABEL_ENDPOINT, LABEL_MANAGED_BY, MANAGED_BY
from mlkube.reconcile.essence import compact_essence

# Per handler; a few handlers per object stay far below the annotations limit.
PROGRESS_MESSAGE_LIMIT = 1024
# The initial LIST of a watched kind comes in pages of this many objects: one response body of
# every pod in the cluster, and its parsed form, is the operator's largest transient allocation.
LIST_CHUNK = 500
# Server-side label selectors of the built-in kinds we watch only for our own children: Kopf's
# handler label filters run client-side, so without these every pod, Deployment and Job of the
# cluster reaches the operator, is parsed and remembered (one Kopf memory per object).
WATCH_SELECTORS: dict[tuple[str, str] | tuple[str, str, str], str] = {
    ("v1", "pods"): f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_ENDPOINT}",
    ("apps", "v1", "deployments"): f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_ENDPOINT}",
    ("batch", "v1", "jobs"): f"{LABEL_MANAGED_BY}={MANAGED_BY}",
}

# asyncio gives every TLS connection a 256 KiB read buffer, allocated and zeroed (so resident)
# for the connection's life: Kopf's client opens one connection per concurrent request (its pool
# is unbounded) and the API server one per concurrent admission call, dozens during a burst
# (docs/benchmarks/operator-scale.md, "Memory"). 64 KiB holds any watch line or response chunk.
SSL_READ_BUFFER = 64 * 1024
# Kopf keeps a worker task per object for this long after its last event, and the worker still
# references that event's body while it idles: 5 s (Kopf's default) kept every object of a
# burst alive at once; Kopf waits longer by itself when it expects the event of its own patch
# (consistency_timeout). docs/benchmarks/operator-scale.md, "Memory, round 3".
WORKER_IDLE_SECONDS = 0.5


class CompactDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's annotation diff-base with oversized subtrees replaced by their digests."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        if not extra_fields:
            # Kopf deep-copies the whole body, status and managedFields included, then keeps
            # only the other stanzas and metadata's labels and annotations: hand it just those
            # (the same essence; the copy was a tenth of the operator's CPU per watch event).
            body = kopf.Body(cast(kopf.RawBody, essence_fields(body)))
        essence = super().build(body=body, extra_fields=extra_fields)
        return cast(kopf.BodyEssence, compact_essence(essence))


def essence_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of `body` Kopf's essence can hold without extra fields (shared, not copied)."""
    slim = {k: v for k, v in body.items() if k not in ("status", "metadata")}
    meta = body.get("metadata") or {}
    slim["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    return slim


class BoundedProgressStorage(kopf.AnnotationsProgressStorage):
    """Kopf's annotation progress storage; a failed handler's error message is bounded."""

    def store(
        self, *, key: kopf.HandlerId, record: kopf.ProgressRecord, body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:  # fmt: skip
        message = record.get("message")
        if isinstance(message, str) and len(message) > PROGRESS_MESSAGE_LIMIT:
            record = record.copy()
            record["message"] = bound_message(message, PROGRESS_MESSAGE_LIMIT)
        super().store(key=key, record=record, body=body, patch=patch)


class _WatchJson:
    """What Kopf's API module uses of `json` (only `loads`, for each watch event line), with
    orjson's decoder: parsing watch events with the standard library was a tenth of the
    operator's CPU at 100 endpoints (docs/benchmarks/operator-scale.md). A unit test checks
    that Kopf still uses nothing else of the module."""

    loads = staticmethod(orjson.loads)


def decode_watch_events_fast() -> None:
    setattr(kopf_api, "json", _WatchJson)  # noqa: B010 (a private attribute of Kopf)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    asyncio.sslproto.SSLProtocol.max_size = SSL_READ_BUFFER
    decode_watch_events_fast()
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.watching.connect_timeout = 5
    settings.watching.chunk_size = LIST_CHUNK
    for selector, labels in WATCH_SELECTORS.items():
        settings.watching.label_selectors[selector] = labels
    settings.networking.request_timeout = 10
    settings.posting.level = logging.WARNING
    # No handler needs a finalizer (an absent operator must never block a deletion). Kopf
    # removes this one from objects that still carry it (from older versions) when it sees
    # them: keep the name.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = BoundedProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = CompactDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.execution.max_workers = max_workers()
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS


# A pass spends most of its time waiting for the API server (a restart's resume passes: five
# LISTs each), so threads, not CPU, bounded a restart of 1,000 endpoints; 16 made it ~20%
# shorter with the same peak memory (docs/benchmarks/operator-scale.md, tenth session).
DEFAULT_WORKERS = 16


def max_workers() -> int:
    """Threads running sync handlers at once (MLKUBE_MAX_WORKERS); the API client keeps as
    many connections (handlers/clients.py)."""
    return max(1, int(os.environ.get("MLKUBE_MAX_WORKERS", str(DEFAULT_WORKERS))))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """An explicit kubeconfig when one is given, else the pod's service account."""
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
