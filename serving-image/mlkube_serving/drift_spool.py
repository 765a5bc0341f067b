"""The drift hook over a shared-memory spool: the sender writes each batch into this worker's
ring (`drift_ring`) instead of POSTing it, and the sidecar reads the ring.

Why (docs/benchmarks/drift-overhead.md, fifth pass): a loopback POST cost the server ~0.34 us
a sample at 100% (the kernel runs the receiving side in the sender's system call) plus the
HTTP client's work. Writing each sample straight into the ring from the request path was
measured too and cost more than it saved (~1.3 us more per `offer` inside a busy server: the
ring's bookkeeping is more Python than two `tobytes` and an append), so the request path is
`DriftHook`'s unchanged and only the delivery moves: a lane's joined batch, a sealed buffer
or a JSON body becomes one ring record (one memcpy), with no socket, no HTTP and no reply.
A full ring (the sidecar slow or down) drops the batch and counts its samples
(`post_failed`, as a failed POST); a prediction never waits.
"""

from __future__ import annotations

from typing import Any

from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_ring import BATCH_RECORD, DEFAULT_CAPACITY, JSON_RECORD, RingWriter

RING_BACKOFF = 0.1  # seconds after a full ring (the sidecar polls every 0.1 s)


class SpoolHook(DriftHook):
    """`DriftHook` whose sender writes its bodies into a per-worker ring in `spool_dir`."""

    def __init__(
        self, url: str, sample_rate: float, spool_dir: str, *,
        ring_bytes: int = DEFAULT_CAPACITY, **options: Any,
    ) -> None:  # fmt: skip
        # A full ring is a sidecar a poll or two behind, not one that is down: try again
        # after about its poll interval, not the POST path's 1 s (which dropped a second of
        # samples at 100% every time the sidecar fell behind).
        options.setdefault("backoff", RING_BACKOFF)
        super().__init__(url, sample_rate, **options)
        self.ring = RingWriter(spool_dir, ring_bytes)

    async def _post(self, body: bytes, head: bytes) -> bool:
        """One body as one record: a binary batch or a JSON payload (by the head it would
        have been POSTed with). Runs on the worker's loop only: the ring's single writer."""
        kind = BATCH_RECORD if head is self._batch_head else JSON_RECORD
        return self.ring.put(kind, 0, body, len(body), b"", 0)

    async def stop(self, timeout: float = 2.0) -> None:
        """Flush, then close the ring (the sidecar drains it and removes it)."""
        await super().stop(timeout)
        self.ring.close()
        self._post = _closed  # type: ignore[method-assign]


async def _closed(body: bytes, head: bytes) -> bool:
    return False  # a stopped hook delivers nothing more (its samples count as dropped)
