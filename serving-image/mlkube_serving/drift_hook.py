"""Send a sample of served features and predictions to the drift sidecar, off the request path.

The dataplane flips the coin; a sampled request in the common case (one small input, the
`predict` output first, the lane's model) costs two references stored in a preallocated
per-worker lane (`drift_refs.RefLane`): no copy, no per-sample object, no encoding. Other
samples are copied into preallocated buffers (`drift_buffers`), text ones into the JSON lane
(`drift_json`). When all are full the sample is dropped and counted in a plain integer that
the sender publishes to `mlkube_drift_samples_send_dropped_total`. A task on the worker's loop,
woken when the lane or a buffer is full (else after `max_delay`), stacks the lane into one
binary batch (raw numbers behind a small header, `DRIFT_SAMPLES_BATCH_TYPE`) and POSTs it, and
each full buffer, to `{MLKUBE_DRIFT_URL}/v1/samples` over one keep-alive connection (a few
POSTs a second at any rate). A slow or dead sidecar costs dropped samples, never latency.

No sender thread (the GIL convoy); references, not copies: docs/benchmarks/drift-overhead.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from numpy import ndarray

from mlkube.contract import DRIFT_SAMPLES_BATCH_TYPE, DRIFT_SAMPLES_PATH
from mlkube_serving import metrics
from mlkube_serving._http.client import UpstreamPool
from mlkube_serving._http.errors import UpstreamError
from mlkube_serving.drift_batch import Array, predictions_of
from mlkube_serving.drift_buffers import FULL, NOT_NUMERIC, SEALED, Buffers
from mlkube_serving.drift_json import JsonLane
from mlkube_serving.drift_refs import HOLD_BYTES, RefLane
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
        self._max_rows = max_rows
        self._timeout = timeout
        self._max_delay = max_delay
        self._backoff = backoff
        self.coin = coin
        # offer() runs on the loop or in the server's inference threads; flush() on the loop.
        self._lock = threading.Lock()
        self._buffers = Buffers(batch_rows, buffer_bytes, max_buffers)  # the copying lane
        self._lane = RefLane(batch_rows)  # the request path's references, packed by flush()
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
        the common case's cost: a few checks, two references stored under the lock."""
        try:
            data = inputs[0].data
            out = outputs[0]
            lane = self._lane
            # Held only if small and not a view of something bigger (a binary V2 input views
            # the whole body): a held array pins its base until the flush.
            if (
                data.nbytes <= HOLD_BYTES
                and out.name == "predict"
                and len(inputs) == 1
                and (
                    (base := data.base) is None
                    or (type(base) is ndarray and base.base is None and base.nbytes <= HOLD_BYTES)
                )
            ):
                with self._lock:
                    i = lane.used
                    if i < lane.capacity and feature_names is lane.names and model == lane.model:
                        lane.rows[i] = data
                        lane.predictions[i] = out.data
                        lane.used = j = i + 1
                        if j == lane.capacity:
                            self._wake_sender()
                        return
                    if lane.start(model, feature_names, data, out.data):  # an empty lane: bind it
                        return
            if len(inputs) == 1 and data.ndim == 2:
                matrix = data
            else:
                matrix = to_feature_matrix(inputs, n_features, feature_names)
            self._keep(model, feature_names, inputs, matrix, predictions_of(outputs))
        except Exception as exc:  # an input the drift view cannot tabulate: skip, count
            log.debug("drift sample skipped: %s", exc)
            with self._lock:
                self._drop(model, "unencodable")

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
            held = self._buffers.pending() + self._lane.used
        return held + len(self._json)

    def start(self) -> None:
        """Start the sender on the running event loop (the worker's)."""
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
            lane = self._lane
            taken = lane.take() if seal or lane.used == lane.capacity else None
            model, names = lane.model, lane.names
        if taken is not None:
            rows, predictions, n = taken
            columns = None if names is None else list(names)
            body = lane.pack(model or "", columns, taken, self._max_rows)
            if body is None:  # not uniform: one by one through the buffers and the JSON lane
                self._replay(model or "", names, rows, predictions, n)
            with self._lock:
                lane.give_back(rows, predictions)
            if body is not None:
                ok = await self._deliver(model or "", n, body, self._batch_head, ok)
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

    def _replay(
        self, model: str, names: list[str] | None, rows: list[Any], preds: list[Any], n: int
    ) -> None:
        """Held samples the pack refused, copied one by one as `offer` would have."""
        for data, labels in zip(rows[:n], preds[:n], strict=True):
            try:
                inputs = [Tensor("input-0", data, "")]
                matrix = data if data.ndim == 2 else to_feature_matrix(inputs, None, names)
                self._keep(model, names, inputs, matrix,
                           predictions_of([Tensor("predict", labels, "")]))  # fmt: skip
            except Exception as exc:
                log.debug("drift sample skipped: %s", exc)
                with self._lock:
                    self._drop(model, "unencodable")

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
