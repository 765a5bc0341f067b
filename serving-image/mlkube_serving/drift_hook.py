"""Send a sample of served features and predictions to the drift sidecar, off the request path.

The request path only flips a biased coin and appends to a bounded deque; when it is full the
sample is dropped and counted (`mlkube_drift_samples_send_dropped_total`). A task on the
worker's own event loop drains the deque every few milliseconds, builds the rows and POSTs them
to `{MLKUBE_DRIFT_URL}/v1/samples` as `{"model", "columns", "rows", "predictions"}` over one
keep-alive connection. A slow or dead sidecar therefore costs dropped samples, never request
latency.

Why not a sender thread: a Python thread doing CPU work next to an asyncio server fights it
for the GIL on every I/O call (the convoy effect); measured here, that cost the server half its
throughput at 100% sampling. On the loop, building a 256-sample body is a few hundred
microseconds of numpy and orjson every flush, and sending it is non-blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from mlkube.contract import DRIFT_SAMPLES_PATH
from mlkube_serving import metrics
from mlkube_serving._http.client import UpstreamPool
from mlkube_serving._http.errors import UpstreamError
from mlkube_serving.protocols.rows import dumps
from mlkube_serving.tensors import Tensor, column_names, to_feature_matrix

log = logging.getLogger(__name__)

SAMPLES_PATH = DRIFT_SAMPLES_PATH
MAX_REPLY_BYTES = 64 * 1024  # the sidecar answers {"accepted": true}; anything big is wrong
# (model, column names, feature rows, predictions): small copies, never views of a request body.
_Sample = tuple[str, list[str] | None, Any, Any]


def sample_rows(
    inputs: list[Tensor],
    outputs: list[Tensor],
    feature_names: list[str] | None,
    n_features: int | None,
    max_rows: int,
) -> tuple[Any, Any, list[str] | None]:
    """Feature rows (as the runtime saw them), predictions and column names of one request.

    Copies at most `max_rows` rows: a queued sample must not keep a whole request body alive.
    """
    rows = np.array(to_feature_matrix(inputs, n_features, feature_names)[:max_rows])
    chosen = next((t for t in outputs if t.name == "predict"), outputs[0])
    data = chosen.data if chosen.data.ndim else chosen.data.reshape(1)
    predictions = np.array(data[: len(rows)])
    return rows, predictions, column_names(inputs, feature_names)


class DriftHook:
    """Bounded, sampled, fire-and-forget delivery of served samples to the drift sidecar."""

    def __init__(
        self,
        url: str,
        sample_rate: float,
        queue_size: int = 4096,
        max_rows: int = 64,
        batch_samples: int = 256,
        timeout: float = 2.0,
        flush_interval: float = 0.02,
        backoff: float = 1.0,
        coin: Callable[[], float] = random.random,
    ) -> None:
        parts = urlsplit(url.rstrip("/") + SAMPLES_PATH)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"drift URL {url!r} must be http://host[:port] (a loopback sidecar)")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._rate = sample_rate
        # deque.append/popleft are atomic: offer() may run on the loop or in a worker thread.
        self._pending: deque[_Sample] = deque()
        self._queue_size = queue_size
        self._max_rows = max_rows
        self._batch = batch_samples
        self._timeout = timeout
        self._interval = flush_interval
        self._backoff = backoff
        self._coin = coin
        self._pool: UpstreamPool | None = None
        self._task: asyncio.Task[None] | None = None

    def offer(
        self,
        model: str,
        feature_names: list[str] | None,
        inputs: list[Tensor],
        outputs: list[Tensor],
        n_features: int | None = None,
    ) -> None:
        """Maybe keep a served request for the sidecar; never blocks."""
        if self._coin() >= self._rate:
            return
        if len(self._pending) >= self._queue_size:
            metrics.count_drift_dropped(model, "queue_full")
            return
        try:
            rows, predictions, columns = sample_rows(
                inputs, outputs, feature_names, n_features, self._max_rows
            )
        except Exception as exc:  # an input the drift view cannot tabulate: skip, count
            log.debug("drift sample skipped: %s", exc)
            metrics.count_drift_dropped(model, "unencodable")
            return
        self._pending.append((model, columns, rows, predictions))

    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        """Start the sender on the running event loop (the worker's)."""
        self._pool = UpstreamPool(self._host, self._port, 1, MAX_REPLY_BYTES)
        self._task = asyncio.get_running_loop().create_task(self._run())

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
        while True:
            await asyncio.sleep(self._interval)
            try:
                delivered = await self.flush()
            except Exception:  # never let one bad batch stop delivery
                log.exception("drift delivery failed")
                delivered = False
            if not delivered:
                await asyncio.sleep(self._backoff)  # sidecar down: drop, don't hammer it

    async def flush(self) -> bool:
        """Send what was pending when called, `batch_samples` at a time; False if a POST failed.

        Only what is already pending: samples that arrive while a POST is in flight wait for the
        next flush, so batches stay large (one HTTP exchange per few hundred samples) instead of
        shrinking to a few samples each under load. After a failed POST the rest is dropped.
        """
        budget = len(self._pending)
        ok = True
        while budget > 0:
            batch: list[_Sample] = []
            while budget > 0 and len(batch) < self._batch:
                batch.append(self._pending.popleft())
                budget -= 1
            for model, count, body in self.bodies(batch):
                if ok and await self._post(body):
                    metrics.count_drift_sent(model, count)
                else:
                    ok = False
                    metrics.count_drift_dropped(model, "post_failed", count)
        return ok

    def bodies(self, batch: list[_Sample]) -> list[tuple[str, int, bytes]]:
        """One POST body per (model, columns, shapes) group: (model, samples, bytes)."""
        groups: dict[tuple[Any, ...], list[tuple[Any, Any]]] = {}
        columns_of: dict[tuple[Any, ...], list[str] | None] = {}
        for model, columns, rows, predictions in batch:
            key = (model, tuple(columns or ()), rows.shape[1:], predictions.shape[1:])
            groups.setdefault(key, []).append((rows, predictions))
            columns_of[key] = columns
        out = []
        for key, items in groups.items():
            body = {
                "model": key[0],
                "columns": columns_of[key],
                "rows": np.concatenate([rows for rows, _ in items]),
                "predictions": np.concatenate([p for _, p in items]),
            }
            out.append((str(key[0]), len(items), dumps(body)))
        return out

    async def _post(self, body: bytes) -> bool:
        if self._pool is None:
            return False
        data = self._head + str(len(body)).encode() + b"\r\n\r\n" + body
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
