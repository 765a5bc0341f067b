"""Send a sample of served features and predictions to the drift sidecar, off the request path.

The dataplane flips the coin. A request the plain V2 shortcut answered (one FP64 JSON tensor,
the commonest) keeps its request and reply bodies as they are, two appends to a per-worker list
(`drift_lane.BodyLane`, `offer_plain`), and the sidecar parses them. Other sampled requests in
the common case (one small input, the `predict` output first, the current lane's layout) cost a
few identity checks, two `tobytes()` copies and one atomic append to a per-worker lane
(`drift_lane.ByteLane`): no lock, no numpy call, no encoding. Other samples are copied into
preallocated buffers (`drift_buffers`), text ones into the JSON lane (`drift_json`). When all
are full the sample is dropped and counted in a plain integer that the sender publishes to
`mlkube_drift_samples_send_dropped_total`. A task on the worker's loop, woken when a lane or a
buffer is full (else after `max_delay`), joins each lane into one binary batch (raw numbers
behind a small header, `DRIFT_SAMPLES_BATCH_TYPE`) and POSTs it, and each full buffer, to
`{MLKUBE_DRIFT_URL}/v1/samples` over one keep-alive connection (a few POSTs a second at any
rate). A slow or dead sidecar costs dropped samples, never latency.

No sender thread (the GIL convoy); byte copies, not numpy calls or held arrays:
docs/benchmarks/drift-overhead.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import random
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from mlkube.contract import DRIFT_SAMPLES_BATCH_TYPE, DRIFT_SAMPLES_PATH
from mlkube_serving import metrics
from mlkube_serving._http.client import UpstreamPool
from mlkube_serving._http.errors import UpstreamError
from mlkube_serving.drift_batch import Array, predictions_of
from mlkube_serving.drift_buffers import FULL, NOT_NUMERIC, SEALED, Buffers
from mlkube_serving.drift_json import JsonLane
from mlkube_serving.drift_lane import (
    BODIES_BUDGET,
    BODIES_FULL,
    MAX_LANES,
    SAMPLE_BYTES,
    BodyLane,
    ByteLane,
    Sample,
)
from mlkube_serving.tensors import Tensor, column_names, to_feature_matrix

log = logging.getLogger(__name__)

SAMPLES_PATH = DRIFT_SAMPLES_PATH
MAX_REPLY_BYTES = 64 * 1024  # the sidecar answers {"accepted": true}; anything big is wrong
JSON_BATCH = 256  # JSON-lane samples that make a POST worth sending before `max_delay`


class DriftHook:
    """Bounded, sampled, fire-and-forget delivery of served samples to the drift sidecar."""

    def __init__(
        self,
        url: str,
        sample_rate: float,
        *,
        max_rows: int = 64,
        batch_rows: int = 2048,
        buffer_bytes: int = 1024 * 1024,
        max_buffers: int = 4,
        queue_size: int = 1024,
        timeout: float = 2.0,
        max_delay: float = 1.0,
        backoff: float = 1.0,
        coin: Callable[[], float] = random.random,
    ) -> None:
        parts = urlsplit(url.rstrip("/") + SAMPLES_PATH)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"drift URL {url!r} must be http://host[:port] (a loopback sidecar)")
        self._host = parts.hostname
        self._port = parts.port or 80
        head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: "
        self._batch_head = f"{head}{DRIFT_SAMPLES_BATCH_TYPE}\r\nContent-Length: ".encode()
        self._json_head = f"{head}application/json\r\nContent-Length: ".encode()
        self.rate = sample_rate  # the dataplane samples: `coin() < rate` (see SampleSink)
        self.sample_rate = sample_rate  # as configured (below 1 a SampleGate picks: rate 1)
        self._max_rows = max_rows
        self._batch_rows = batch_rows
        self._timeout = timeout
        self._max_delay = max_delay
        self._backoff = backoff
        self.coin = coin
        # offer() runs on the loop or in the server's inference threads; flush() on the loop.
        self._lock = threading.Lock()
        self._buffers = Buffers(batch_rows, buffer_bytes, max_buffers)  # the copying lane
        self._lane = ByteLane(batch_rows, max_rows)  # the current lane; unbound until a sample
        self._lanes: dict[tuple[Any, ...], ByteLane] = {}  # every bound lane (never dropped)
        # The plain shortcut's current lane (unbound until a sample); public: v2_plain appends
        # to it inline (`offer_plain`).
        self.bodies = BodyLane(batch_rows)
        self._body_lanes: dict[tuple[Any, ...], BodyLane] = {}
        self._json = JsonLane(queue_size)
        self._drops: dict[tuple[str, str], int] = {}
        self._pool: UpstreamPool | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()  # set (thread-safely) when a buffer is full

    def offer(
        self,
        model: str,
        feature_names: list[str] | None,
        inputs: list[Tensor],
        outputs: list[Tensor],
        n_features: int | None = None,
    ) -> None:
        """Keep a sampled request for the sidecar; never blocks, never raises. Written for
        the common case's cost: a few checks, two byte copies, one atomic append."""
        try:
            data = inputs[0].data
            out = outputs[0]
            if (
                len(inputs) == 1
                and data.ndim == 2
                and self._into_lane(model, feature_names, data, out)
            ):
                return
            if (
                len(inputs) == 1
                and out.name == "predict"
                and self._lane_for(model, feature_names, data, out.data)
            ):
                return  # another lane's layout (or the first sample): that lane keeps it
            self._copy_sample(model, feature_names, inputs, outputs, n_features)
        except Exception as exc:  # an input the drift view cannot tabulate: skip, count
            log.debug("drift sample skipped: %s", exc)
            with self._lock:
                self._drop(model, "unencodable")

    def offer_rows(
        self,
        model: str,
        feature_names: list[str] | None,
        name: str,
        features: np.ndarray[Any, Any],
        outputs: list[Tensor],
        n_features: int | None = None,
    ) -> None:
        """`offer` of one 2-D FP64 input named `name` (the plain V2 shortcut's request,
        protocols/v2_plain.py): no Tensor or list is made unless the sample leaves the
        current lane."""
        try:
            if self._into_lane(model, feature_names, features, outputs[0]):
                return
        except Exception as exc:  # as in offer: skip, count
            log.debug("drift sample skipped: %s", exc)
            with self._lock:
                self._drop(model, "unencodable")
            return
        self.offer(model, feature_names, [Tensor(name, features, "FP64")], outputs, n_features)

    def offer_plain(
        self, model: str, feature_names: list[str] | None, width: int, body: bytes, reply: bytes
    ) -> bool:
        """Keep the plain V2 shortcut's request and reply bodies as they are (the sidecar
        parses them). False when the lane does not take the sample (together over
        `SAMPLE_BYTES`, the lane full by count or bytes, a fifth layout): the caller offers it
        the copying way. Never raises. On the worker's loop only.

        `v2_plain.infer_plain` runs the first branch inline on `self.bodies` (a call and its
        argument passing were a third of a sample's cost at 100%); keep the two the same
        (tests/unit/serving/test_serving_v2_plain.py compares them)."""
        lane = self.bodies
        if feature_names is lane.names and model == lane.model:
            items = lane.items
            size = len(body) + len(reply)
            held = lane.held + size
            if size <= SAMPLE_BYTES and held <= BODIES_BUDGET and len(items) < lane.limit:
                items.append(body)
                items.append(reply)
                lane.held = held
                if held > BODIES_FULL or len(items) >= lane.limit:
                    self._wake.set()  # full (BodyLane.full); on the loop: no self-pipe write
                return True
            return False
        return self._body_lane_for(model, feature_names, width, body, reply)

    def _body_lane_for(
        self, model: str, feature_names: list[str] | None, width: int, body: bytes, reply: bytes
    ) -> bool:
        """Make the body lane of this layout the current one and keep the sample there (a
        layout's first sample, or one after a switch)."""
        if len(body) + len(reply) > SAMPLE_BYTES:
            return False
        if width < 1 or (feature_names is not None and len(feature_names) != width):
            return False
        with self._lock:  # `pending` and `flush` read the lanes from other threads too
            key = (model, id(feature_names), width)
            lane = self._body_lanes.get(key)
            if lane is None:
                if len(self._body_lanes) >= MAX_LANES:
                    return False
                lane = self._body_lanes[key] = BodyLane(self._batch_rows, model, feature_names,
                                                        width, self._wake)  # fmt: skip
            self.bodies = lane
        return self.offer_plain(model, feature_names, width, body, reply)

    def _into_lane(
        self, model: str, feature_names: list[str] | None, data: Any, out: Tensor
    ) -> bool:
        """Append one 2-D sample to the current lane if it has the lane's layout and the lane
        has room. Checked with identities and C getters; no lock: the deque's append is
        atomic (drift_lane.py)."""
        pred = out.data
        lane = self._lane
        if (
            data.dtype is lane.dtype
            and pred.dtype is lane.pred_dtype
            and feature_names is lane.names
            and model == lane.model
            and out.name == "predict"
            and 0 < (nbytes := data.nbytes) <= lane.max_bytes
            and nbytes == len(data) * lane.row_bytes
        ):
            queue = lane.queue
            if len(queue) < lane.capacity:
                queue.append((data.tobytes(), pred.tobytes()))
                if len(queue) >= lane.capacity:
                    self._wake_sender()
                return True
        return False

    def _copy_sample(
        self,
        model: str,
        feature_names: list[str] | None,
        inputs: list[Tensor],
        outputs: list[Tensor],
        n_features: int | None,
    ) -> None:
        """The general path: the sample's first rows through the buffers (or JSON lane)."""
        data = inputs[0].data
        if len(inputs) == 1 and data.ndim == 2:
            matrix = data
        else:
            matrix = to_feature_matrix(inputs, n_features, feature_names)
        self._keep(model, feature_names, inputs, matrix, predictions_of(outputs))

    def _lane_for(self, model: str, feature_names: list[str] | None, data: Any, pred: Any) -> bool:
        """Make the lane of this sample's layout the current one and keep the sample there;
        False when no lane takes it (layout, size, `MAX_LANES`) or its lane is full."""
        with self._lock:
            probe = ByteLane.for_sample(self._batch_rows, self._max_rows, model, feature_names,
                                        data, pred)  # fmt: skip
            if probe is None:
                return False
            lane = self._lanes.get(probe.layout())
            if lane is None:
                if len(self._lanes) >= MAX_LANES:
                    return False
                lane = self._lanes[probe.layout()] = probe
            if len(lane.queue) >= lane.capacity:
                return False
            self._lane = lane
            lane.queue.append((data.tobytes(), pred.tobytes()))
            if len(lane.queue) >= lane.capacity:
                self._wake_sender()
            return True

    def _keep(
        self,
        model: str,
        feature_names: list[str] | None,
        inputs: list[Tensor],
        matrix: Array,
        predictions: Array | None,
    ) -> None:
        """Copy a sample into a buffer (or the JSON lane): samples the lane does not hold."""
        n = matrix.shape[0]
        k = n if n <= self._max_rows else self._max_rows
        if k == 0:
            return
        if predictions is not None and predictions.shape[0] < k:
            predictions = None  # not one per row: rows without predictions
        with self._lock:
            kept = self._buffers.put(model, feature_names, inputs, matrix, predictions, k)
            if kept == FULL:
                self._drop(model, "queue_full")
            elif kept == SEALED:
                self._wake_sender()
        if kept != NOT_NUMERIC:
            return
        columns = column_names(inputs, feature_names)
        if not self._json.offer(model, columns, matrix, predictions, k):
            with self._lock:
                self._drop(model, "queue_full")
        elif len(self._json) == JSON_BATCH:
            self._wake_sender()

    def _drop(self, model: str, reason: str, samples: int = 1) -> None:
        key = (model, reason)
        self._drops[key] = self._drops.get(key, 0) + samples

    def pending(self) -> int:
        """Samples held for the sender (buffers and the JSON lane)."""
        with self._lock:
            held = self._buffers.pending() + sum(len(lane.queue) for lane in self._lanes.values())
            held += sum(len(lane.items) // 2 for lane in self._body_lanes.values())
        return held + len(self._json)

    def start(self) -> None:
        """Start the sender on the running event loop (the worker's)."""
        keep_heap()
        self._pool = UpstreamPool(self._host, self._port, 1, MAX_REPLY_BYTES)
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    def _wake_sender(self) -> None:
        """A buffer is full: wake the sender (from the loop or an inference thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self, timeout: float = 2.0) -> None:
        """Flush what is pending (bounded by `timeout`) and stop the sender."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        if self._pool is not None:
            self._pool.retire()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, last + self._max_delay - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            due = loop.time() - last >= self._max_delay
            if due:
                last = loop.time()
            try:
                delivered = await self.flush(seal=due)
            except Exception:  # never let one bad batch stop delivery
                log.exception("drift delivery failed")
                delivered = False
            if not delivered:
                await asyncio.sleep(self._backoff)  # sidecar down: drop, don't hammer it

    def publish_drops(self) -> None:
        """Move the drop counts kept by offer() into the Prometheus counter."""
        with self._lock:
            drops, self._drops = self._drops, {}
        for (model, reason), samples in drops.items():
            metrics.count_drift_dropped(model, reason, samples)

    async def flush(self, seal: bool = True) -> bool:
        """Send the full buffers (and with `seal` the one being filled), one POST per buffer,
        and the JSON lane; False if a POST failed.

        Only what is already pending: samples that arrive while a POST is in flight wait for
        the next flush, so batches stay large. After a failed POST the rest is dropped.
        """
        ok = True
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            if not seal and len(lane.queue) < lane.capacity:
                continue
            samples = lane.drain()
            if not samples:
                continue
            names = lane.names
            body, n, others = lane.body(None if names is None else list(names), samples)
            for sample in others:
                self._copy(lane, sample)
            if body is not None:
                ok = await self._deliver(lane.model or "", n, body, self._batch_head, ok)
        with self._lock:
            bodies = list(self._body_lanes.values())
        for body_lane in bodies:
            if not body_lane.items or not (seal or body_lane.full()):
                continue
            items = body_lane.take()
            ok = await self._deliver(body_lane.model or "", len(items) // 2, body_lane.body(items),
                                     self._batch_head, ok)  # fmt: skip
        with self._lock:
            batches = self._buffers.take_sealed(seal)
        self.publish_drops()
        for buf in batches:
            ok = await self._deliver(buf.model, buf.samples, buf.body(), self._batch_head, ok)
            with self._lock:
                self._buffers.recycle(buf)
        for model, count, body in self._json.drain():
            ok = await self._deliver(model, count, body, self._json_head, ok)
        return ok

    def _copy(self, lane: ByteLane, sample: Sample) -> None:
        """A lane sample whose predictions are not one per row: its rows, without predictions,
        through the buffers (what `predictions_of` makes of such an output)."""
        assert lane.dtype is not None
        rows = np.frombuffer(sample[0], lane.dtype).reshape(-1, lane.width)
        self._keep(lane.model or "", lane.names, [Tensor("input-0", rows, "")], rows, None)

    async def _deliver(self, model: str, samples: int, body: bytes, head: bytes, ok: bool) -> bool:
        """POST one body unless an earlier one failed; count it sent or dropped."""
        if ok and await self._post(body, head):
            metrics.count_drift_sent(model, samples)
            return True
        metrics.count_drift_dropped(model, "post_failed", samples)
        return False

    async def _post(self, body: bytes, head: bytes) -> bool:
        if self._pool is None:
            return False
        data = b"".join((head, str(len(body)).encode(), b"\r\n\r\n", body))
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            response = await self._pool.request(data, deadline)
        except UpstreamError as exc:
            log.debug("drift POST failed: %s", exc)
            return False
        if response.status >= 300:
            log.warning("drift sidecar answered %s", response.status)
            return False
        return True


HEAP_KEPT = 4 * 1024 * 1024  # freed heap glibc keeps instead of trimming (M_TRIM_THRESHOLD)
HEAP_MMAP = 2 * 1024 * 1024  # allocations up to this come from the heap (M_MMAP_THRESHOLD)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_heap_kept: bool | None = None


def keep_heap() -> bool:
    """Let glibc keep a few MiB of freed heap; once per process. True if glibc took both.

    Why (issue 16, eighth pass): each flush builds a batch body of up to `BODIES_BUDGET` and
    frees it. With glibc's defaults, a server whose heap top is free (the numpy linear
    backend's) gave those pages back after every flush and faulted them in again in the next
    one: 433 page faults, ~0.9 of a flush's ~1.1 ms, against none in an onnxruntime server.
    Setting both thresholds (setting one turns off glibc's own adjustment of the other) keeps
    them. The cost: up to `HEAP_KEPT` of freed memory per malloc arena stays mapped, and
    blocks up to `HEAP_MMAP` come from the heap (docs/serving.md, drift hook)."""
    global _heap_kept
    if _heap_kept is not None:
        return _heap_kept
    _heap_kept = False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mmap_set = mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP)
    trim_set = mallopt(_M_TRIM_THRESHOLD, HEAP_KEPT)
    _heap_kept = bool(mmap_set and trim_set)
    if not _heap_kept:
        log.debug("mallopt refused the drift sender's heap thresholds")
    return _heap_kept
