"""Send a sample of served features and predictions to the drift sidecar, off the request path.

The request path only flips a biased coin and does a non-blocking put on a bounded queue; when
the queue is full the sample is dropped and counted (`mlkube_drift_samples_send_dropped_total`). A
daemon thread drains the queue, builds the rows and POSTs them to
`{MLKUBE_DRIFT_URL}/v1/samples` as `{"model", "columns", "rows", "predictions"}`. A slow or dead
sidecar therefore costs dropped samples, never request latency.
"""

from __future__ import annotations

import http.client
import logging
import queue
import random
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from mlkube_serving import metrics
from mlkube_serving.protocols.rows import dumps
from mlkube_serving.tensors import Tensor, column_names, to_feature_matrix

log = logging.getLogger(__name__)

SAMPLES_PATH = "/v1/samples"
_Sample = tuple[str, list[str] | None, list[Tensor], list[Tensor]]


def sample_rows(sample: _Sample, max_rows: int) -> tuple[Any, Any, list[str] | None]:
    """Feature rows, predictions and column names of one served request."""
    _, feature_names, inputs, outputs = sample
    rows = to_feature_matrix(inputs, None, feature_names)[:max_rows]
    chosen = next((t for t in outputs if t.name == "predict"), outputs[0])
    predictions = chosen.data[: len(rows)] if chosen.data.ndim else chosen.data.reshape(1)
    return rows, predictions, column_names(inputs, feature_names)


class DriftHook:
    """Bounded, sampled, fire-and-forget delivery of served samples to the drift sidecar."""

    def __init__(
        self,
        url: str,
        sample_rate: float,
        queue_size: int = 256,
        max_rows: int = 64,
        batch_samples: int = 32,
        timeout: float = 2.0,
        coin: Callable[[], float] = random.random,
    ) -> None:
        parts = urlsplit(url.rstrip("/") + SAMPLES_PATH)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"drift URL {url!r} must be http(s)://host[:port]")
        self._parts = parts
        self._rate = sample_rate
        self._queue: queue.Queue[_Sample] = queue.Queue(maxsize=queue_size)
        self._max_rows = max_rows
        self._batch = batch_samples
        self._timeout = timeout
        self._coin = coin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: http.client.HTTPConnection | None = None

    def offer(
        self,
        model: str,
        feature_names: list[str] | None,
        inputs: list[Tensor],
        outputs: list[Tensor],
    ) -> None:
        """Maybe enqueue a served request; never blocks."""
        if self._coin() >= self._rate:
            return
        try:
            self._queue.put_nowait((model, feature_names, inputs, outputs))
        except queue.Full:
            metrics.count_drift_dropped(model, "queue_full")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlkube-drift", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Flush what is queued (bounded by `timeout`) and stop the sender."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    break
                continue
            batch = [first]
            while len(batch) < self._batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._deliver(batch)

    def _deliver(self, batch: list[_Sample]) -> None:
        groups: dict[tuple[Any, ...], list[tuple[Any, Any]]] = {}
        columns_of: dict[tuple[Any, ...], list[str] | None] = {}
        for sample in batch:
            try:
                rows, predictions, columns = sample_rows(sample, self._max_rows)
            except Exception as exc:
                log.debug("drift sample skipped: %s", exc)
                metrics.count_drift_dropped(sample[0], "unencodable")
                continue
            key = (sample[0], tuple(columns or ()), rows.shape[1:], predictions.shape[1:])
            groups.setdefault(key, []).append((rows, predictions))
            columns_of[key] = columns
        for key, items in groups.items():
            body = {
                "model": key[0],
                "columns": columns_of[key],
                "rows": np.concatenate([rows for rows, _ in items]),
                "predictions": np.concatenate([p for _, p in items]),
            }
            if self._post(dumps(body)):
                metrics.count_drift_sent(key[0], len(items))
            else:
                metrics.count_drift_dropped(key[0], "post_failed", len(items))

    def _post(self, body: bytes) -> bool:
        parts = self._parts
        for _ in range(2):  # one retry on a fresh connection: the sidecar may have closed it
            try:
                if self._connection is None:
                    factory = (
                        http.client.HTTPSConnection
                        if parts.scheme == "https"
                        else http.client.HTTPConnection
                    )
                    self._connection = factory(
                        parts.hostname or "", parts.port, timeout=self._timeout
                    )
                self._connection.request(
                    "POST", parts.path, body, {"content-type": "application/json"}
                )
                response = self._connection.getresponse()
                response.read()
                if response.status < 300:
                    return True
                log.warning("drift sidecar answered %s", response.status)
                return False
            except (OSError, http.client.HTTPException) as exc:
                log.debug("drift POST failed: %s", exc)
                if self._connection is not None:
                    self._connection.close()
                self._connection = None
        return False
