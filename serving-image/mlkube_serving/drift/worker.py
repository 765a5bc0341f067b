"""The thread that owns the drift engine: ingests queued payloads and evaluates periodically.

The HTTP handler only parses JSON and puts the payload on a queue bounded in payloads and in
bytes (dropping and counting when either is spent), so a slow evaluation can never hold up the
model server's request nor grow the sidecar's memory. The bytes counted are those the parsed
payload holds (`held_bytes`), not its JSON text: a parsed float is a 24-byte object plus an
8-byte list slot where the text had 4 to 20 bytes, so budgeting the text would let the queue
hold several times the budget.
Evaluation runs here, off the request path, after `eval_samples` new rows or `eval_interval`
seconds (whichever comes first, but never more often than `min_gap` seconds) and publishes an
immutable summary that readers pick up with a single attribute read.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.errors import PayloadError

log = logging.getLogger(__name__)

# Upper bounds of what parsing adds (CPython, 64-bit): per JSON value a list slot (8) plus the
# object (float 24, int 28 to 36, ASCII str 49 + its text); per row a list (56) plus its slot
# in `rows` (8). The text of strings is covered by adding the body's own length.
_VALUE_BYTES = 8 + 56
_ROW_BYTES = 8 + 56


def held_bytes(payload: object, body_size: int) -> int:
    """What a parsed samples payload holds in memory, from above (cheap: no deep walk).

    Rows are lists of scalars (anything else is rejected by the worker, which frees it).
    """
    if not isinstance(payload, dict):
        return body_size
    values = rows = 0
    for key in ("rows", "predictions"):
        items = payload.get(key)
        if isinstance(items, list):
            try:
                values += sum(map(len, items))
                rows += len(items)
            except TypeError:  # scalars (predictions), or a malformed payload
                values += len(items)
    return body_size + rows * _ROW_BYTES + values * _VALUE_BYTES


def utc_now() -> str:
    """RFC 3339 UTC timestamp with milliseconds (sortable as a string)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class DriftWorker:
    """Queue in front of a `DriftEngine`, drained by one daemon thread."""

    def __init__(
        self,
        engine: DriftEngine,
        *,
        eval_interval: float = 5.0,
        eval_samples: int | None = None,
        min_gap: float = 0.2,
        queue_size: int = 1024,
        max_queued_bytes: int = 64 * 1024 * 1024,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.eval_interval = eval_interval
        self.eval_samples = eval_samples or engine.window_size
        self.min_gap = min(min_gap, eval_interval)
        self._queue: queue.Queue[tuple[object, int, int]] = queue.Queue(maxsize=queue_size)
        # Bytes the queued payloads hold (`held_bytes`): the loop adds, the worker subtracts.
        self.max_queued_bytes = max_queued_bytes
        self.queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._observe = observe
        # Each counter has a single writer: the event loop (received, dropped_full, invalid)
        # or the worker thread (rejected); readers only sum them.
        self.received = 0
        self.dropped_full = 0
        self.rejected = 0
        self.invalid_payloads = 0
        self.evaluations = 0
        self.summary: dict[str, Any] = engine.evaluate(now=None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-worker", daemon=True)

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.rejected

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, payload: object, rows: int, size: int = 0) -> bool:
        """Queue a parsed payload holding `size` bytes (`held_bytes`); False (counted as
        dropped) when the queue is full or its byte budget is spent."""
        self.received += rows
        with self._bytes_lock:
            if self.queued_bytes + size > self.max_queued_bytes:
                self.dropped_full += rows
                return False
            self.queued_bytes += size
        try:
            self._queue.put_nowait((payload, rows, size))
        except queue.Full:
            self._release(size)
            self.dropped_full += rows
            return False
        return True

    def count_invalid(self, rows: int) -> None:
        """Rows that arrived unreadable (a spool record that does not match its layout); on
        the loop, like `submit`."""
        self.invalid_payloads += 1
        self.dropped_full += rows

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self.queued_bytes -= size

    def current_summary(self) -> dict[str, Any]:
        """The latest evaluation with live counters."""
        return {
            **self.summary,
            "samplesReceived": self.received,
            "samplesDropped": self.dropped,
            "samplesIngested": self.engine.ingested,
        }

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            wake = last + self.eval_interval
            if self.engine.pending >= self.eval_samples:
                wake = last + self.min_gap
            timeout = max(0.0, min(wake - time.monotonic(), 0.5))
            try:
                payload, rows, size = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                self._ingest(payload, rows)
                del payload  # before releasing its bytes: the budget counts what is alive
                self._release(size)
            now = time.monotonic()
            pending = self.engine.pending
            due = now - last >= self.eval_interval or (
                pending >= self.eval_samples and now - last >= self.min_gap
            )
            if due and pending:
                self.evaluate()
                last = time.monotonic()
            elif due:
                last = now

    def _ingest(self, payload: object, rows: int) -> None:
        try:
            self.engine.ingest(payload)
        except PayloadError as exc:
            self.rejected += rows
            log.debug("rejected drift payload: %s", exc)
        except Exception:  # one bad payload must not kill the worker
            self.rejected += rows
            log.exception("drift payload failed")

    def evaluate(self) -> dict[str, Any]:
        """Evaluate now (worker thread, or tests that drive the engine synchronously)."""
        started = time.perf_counter()
        summary = self.engine.evaluate(now=utc_now(), received=self.received, dropped=self.dropped)
        if self._observe is not None:
            self._observe(time.perf_counter() - started)
        self.summary = summary
        self.evaluations += 1
        return summary
