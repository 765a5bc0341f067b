"""The drift hook over a shared-memory spool: a sampled request is copied into this worker's
ring (`drift_ring`) as it is served, and the sidecar reads the ring.

Why (docs/benchmarks/drift-overhead.md, fifth pass): over HTTP a sample cost two `tobytes()`
objects held in a deque, a sender joining them and a loopback POST (~2.5 us a request at 100%).
Here the common case (the current lane's layout, as `DriftHook.offer` checks it) is two buffer
copies from the request's arrays into the mmap and a 16-byte header: nothing is allocated or
held, there is no sender and no POST. A full ring (the sidecar slow or down) drops the sample
and counts it; a prediction never waits. Samples the lanes do not take still go through the
copying buffers, which the sender task writes into the ring when sealed; text samples still
go over HTTP (`drift_json`), and the task publishes the sent and dropped counters.
"""

from __future__ import annotations

import logging
from threading import get_ident
from typing import Any

from mlkube_serving import metrics
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_lane import MAX_LANES, ByteLane
from mlkube_serving.drift_ring import (
    DATA_AT,
    DEFAULT_CAPACITY,
    RECORD_BYTES,
    RingWriter,
    fields_word,
)
from mlkube_serving.tensors import Tensor

log = logging.getLogger(__name__)


class SpoolLane(ByteLane):
    """A lane that holds nothing: its samples go to the ring under `layout_id`. A one-row
    sample's record size and fields word are fixed: computed once here."""

    __slots__ = ("fields", "layout_id", "pred_bytes", "size", "written")

    def bind(self, layout_id: int) -> None:
        assert self.pred_dtype is not None
        self.layout_id = layout_id
        self.pred_bytes = self.pred_dtype.itemsize
        self.size = (RECORD_BYTES + 7 + self.row_bytes + self.pred_bytes) & -8
        self.fields = fields_word(layout_id, 1, self.row_bytes, self.pred_bytes)
        self.written = 0  # samples written by `offer` (the sender publishes them)


class SpoolHook(DriftHook):
    """`DriftHook` whose lanes and buffers write into a per-worker ring in `spool_dir`."""

    def __init__(
        self, url: str, sample_rate: float, spool_dir: str, *,
        ring_bytes: int = DEFAULT_CAPACITY, **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(url, sample_rate, **options)
        self.ring = RingWriter(spool_dir, ring_bytes)
        self._lane: SpoolLane = SpoolLane(1, self._max_rows)  # unbound until a sample
        self._spool_lanes: dict[tuple[Any, ...], SpoolLane] = {}
        # The ring has one writer, the worker's event loop thread (`start`); samples taken in
        # an inference thread go through the locked buffers, which the loop writes in.
        self._writer: int | None = None
        self._published = [0]  # `ring.written` already counted, by layout id

    def offer(
        self,
        model: str,
        feature_names: list[str] | None,
        inputs: list[Tensor],
        outputs: list[Tensor],
        n_features: int | None = None,
    ) -> None:
        """Copy a sampled request into the ring; never blocks, never raises."""
        try:
            data = inputs[0].data
            out = outputs[0]
            pred = out.data
            lane = self._lane
            if (
                data.dtype is lane.dtype
                and pred.dtype is lane.pred_dtype
                and feature_names is lane.names
                and model == lane.model
                and len(inputs) == 1
                and out.name == "predict"
                and data.ndim == 2
                and 0 < (nbytes := data.nbytes) <= lane.max_bytes
                and nbytes == len(data) * lane.row_bytes
                and get_ident() == self._writer
            ):
                # `RingWriter.put` inlined (a call and its checks cost as much as a copy).
                ring = self.ring
                w = ring.w
                pnb = pred.nbytes
                if nbytes == lane.row_bytes and pnb == lane.pred_bytes:
                    end = w + lane.size
                    fields = lane.fields
                else:  # several rows
                    end = w + ((RECORD_BYTES + 7 + nbytes + pnb) & -8)
                    fields = fields_word(lane.layout_id, 1, nbytes, pnb)
                if end <= ring.stop and pnb <= 0xFFFF:
                    offset = w & ring.mask
                    at = DATA_AT + offset
                    mm: Any = ring.mm
                    try:
                        mm[at : at + nbytes] = data
                        mm[at + nbytes : at + nbytes + pnb] = pred
                    except (BufferError, TypeError, ValueError):
                        pass  # not C-contiguous: the copying path below (the record is unsent)
                    else:
                        words = ring.words
                        i = offset >> 3
                        words[i + 1] = fields
                        words[i] = w  # the commit word, last
                        ring.w = end
                        ring.published[0] = end
                        lane.written += 1
                        return
                else:  # `put` counts it, or it is full: the sidecar is behind or down
                    if not ring.put(lane.layout_id, 1, data, nbytes, pred, pnb):
                        self._drop(model, "queue_full")
                    return
            elif (
                len(inputs) == 1
                and out.name == "predict"
                and get_ident() == self._writer
                and self._spool_lane_for(model, feature_names, data, pred)
            ):
                return
            self._copy_sample(model, feature_names, inputs, outputs, n_features)
        except Exception as exc:  # an input the drift view cannot tabulate: skip, count
            log.debug("drift sample skipped: %s", exc)
            with self._lock:
                self._drop(model, "unencodable")

    def _spool_lane_for(
        self, model: str, feature_names: list[str] | None, data: Any, pred: Any
    ) -> bool:
        """Make this sample's layout the current lane and write the sample; False when no lane
        takes it (the copying path does)."""
        with self._lock:
            probe = SpoolLane.for_sample(1, self._max_rows, model, feature_names, data, pred)
            if probe is None or not data.flags.c_contiguous or not pred.flags.c_contiguous:
                return False
            lane = self._spool_lanes.get(probe.layout())
            if lane is None:
                if len(self._spool_lanes) >= MAX_LANES:
                    return False
                columns = None if feature_names is None else list(feature_names)
                ident = self.ring.layout(model, columns, probe.width, probe.dtype,
                                         probe.pred_dtype)  # fmt: skip
                if ident is None:
                    return False
                assert isinstance(probe, SpoolLane)
                probe.bind(ident)
                lane = self._spool_lanes[probe.layout()] = probe
            self._lane = lane
            if not self.ring.put(lane.layout_id, 1, data, data.nbytes, pred, pred.nbytes):
                self._drop(model, "queue_full")
            return True

    def start(self) -> None:
        self._writer = get_ident()
        super().start()

    async def flush(self, seal: bool = True) -> bool:
        """Write sealed buffers into the ring, send the JSON lane, publish the counters."""
        with self._lock:
            batches = self._buffers.take_sealed(seal)
            for buf in batches:
                self._spool_buffer(buf)
                self._buffers.recycle(buf)
            self._publish_written()
        self.publish_drops()
        ok = True
        for model, count, body in self._json.drain():
            ok = await self._deliver(model, count, body, self._json_head, ok)
        return ok

    def _spool_buffer(self, buf: Any) -> None:
        """One sealed buffer as one record of its layout (under the lock)."""
        n = buf.used
        ident = self.ring.layout(buf.model, buf.columns, buf.width, buf.rows_dtype,
                                 buf.pred_dtype)  # fmt: skip
        preds = buf.predictions[:n] if buf.predictions is not None else b""
        rows = buf.rows[:n]
        if ident is None or not self.ring.put(
            ident, buf.samples, rows, rows.nbytes, preds, len(memoryview(preds).cast("B"))
        ):
            self._drop(buf.model, "queue_full", buf.samples)

    def _publish_written(self) -> None:
        """Samples written into the ring since the last call, as `count_drift_sent`."""
        written = list(self.ring.written)
        for lane in self._spool_lanes.values():
            written[lane.layout_id] += lane.written
        self._published.extend([0] * (len(written) - len(self._published)))
        for ident, total in enumerate(written):
            if total > self._published[ident]:
                metrics.count_drift_sent(self.ring.models[ident], total - self._published[ident])
                self._published[ident] = total

    async def stop(self, timeout: float = 2.0) -> None:
        await super().stop(timeout)
        self._writer = None  # later samples (none expected) take the buffers, never the ring
        self.ring.close()
