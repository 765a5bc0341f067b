"""The sidecar's end of the samples spool: drain every worker's ring into the drift worker.

The model server's workers write their samples into shared-memory rings (`drift_ring`) in a
directory both containers mount: the model server's sender writes each body it would have
POSTed (a binary batch, or JSON for text rows) as one record, checked and queued here as the
HTTP handlers do; records of registered layouts (one sample's rows and predictions each) are
rebuilt into the same `SampleBatch` runs. A task on the sidecar's event loop (the one that also
takes HTTP batches, so the worker's counters keep a single writer) wakes every `interval`
seconds, opens rings it has not seen and takes the records published since: the engine cannot
tell the paths apart. Rings whose writer is gone (its lock is free) are drained and removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlkube_serving.drift.batch import BATCH_OVERHEAD_BYTES, DTYPES, SampleBatch, batch_held_bytes
from mlkube_serving.drift.bodies import decode_samples
from mlkube_serving.drift.errors import PayloadError
from mlkube_serving.drift.worker import held_bytes
from mlkube_serving.drift_ring import BATCH_RECORD, JSON_RECORD, Record, RingReader, ring_files

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.1

Submit = Callable[[object, int, int], object]  # DriftWorker.submit(payload, rows, size)


class SpoolReader:
    """Every ring in `directory`, drained into `submit` (the worker's queue)."""

    def __init__(self, directory: Path, submit: Submit, on_invalid: Callable[[int], None]):
        self.directory = directory
        self._submit = submit
        self._on_invalid = on_invalid  # rows of records that do not match their layout
        self._rings: dict[Path, RingReader] = {}
        self.batches = 0

    def poll(self) -> int:
        """One pass over the directory; the rows submitted."""
        rows = 0
        for path in ring_files(self.directory):
            reader = self._rings.get(path)
            if reader is None:
                try:
                    reader = self._rings[path] = RingReader(path)
                except (OSError, ValueError) as exc:
                    log.warning("drift spool %s skipped: %s", path.name, exc)
                    continue
            gone = reader.writer_gone()
            rows += self._drain(reader, reader.take(everything=gone))
            if gone:
                del self._rings[path]
                reader.remove()
        for path in [p for p in self._rings if not p.exists()]:
            self._rings.pop(path).close()
        return rows

    def _drain(self, reader: RingReader, records: list[Record]) -> int:
        rows = 0
        bodies = [r for r in records if r[0] in (BATCH_RECORD, JSON_RECORD)]
        if bodies:  # the server's sender writes whole bodies: as if POSTed
            records = [r for r in records if r[0] not in (BATCH_RECORD, JSON_RECORD)]
            for kind, _, body, _ in bodies:
                rows += self._submit_body(kind, body)
        for batch in self._batches(reader, records):
            held = batch.rows.nbytes + BATCH_OVERHEAD_BYTES
            if batch.predictions is not None:
                held += batch.predictions.nbytes
            self._submit(batch, batch.count, held)
            self.batches += 1
            rows += batch.count
        return rows

    def _submit_body(self, kind: int, body: bytes) -> int:
        """A binary batch or a JSON body, checked and queued as the HTTP handlers do."""
        try:
            if kind == BATCH_RECORD:
                batch = decode_samples(body)
                if batch.invalid:
                    self._on_invalid(batch.invalid)
                self._submit(batch, batch.count, batch_held_bytes(batch, len(body)))
                self.batches += 1
                return batch.count
            payload = orjson.loads(body)
            rows = payload["rows"]
            count = len(rows) if isinstance(rows, list) else 0
        except (PayloadError, orjson.JSONDecodeError, KeyError, TypeError):
            self._on_invalid(0)
            return 0
        self._submit(payload, count, held_bytes(payload, len(body)))
        self.batches += 1
        return count

    def _batches(self, reader: RingReader, records: list[Record]) -> Iterator[SampleBatch]:
        """Runs of one layout as batches; a record whose predictions are not one per row
        goes alone, without them (as the HTTP path sends it)."""
        start = 0
        while start < len(records):
            ident = records[start][0]
            end = start + 1
            while end < len(records) and records[end][0] == ident:
                end += 1
            layout = reader.layouts.get(ident) or reader.load_layouts().get(ident)
            run = records[start:end]
            start = end
            if layout is None or not _valid(layout):
                self._on_invalid(sum(r[1] for r in run))
                continue
            yield from _build(layout, run, self._on_invalid)

    def close(self) -> None:
        for reader in self._rings.values():
            reader.close()
        self._rings.clear()

    async def run(self, interval: float = DEFAULT_INTERVAL) -> None:
        """Poll until cancelled; a failing pass is logged, never fatal."""
        while True:
            try:
                self.poll()
            except Exception:
                log.exception("drift spool pass failed")
            await asyncio.sleep(interval)


def _valid(layout: dict[str, Any]) -> bool:
    width, columns, preds = layout.get("width"), layout.get("columns"), layout.get("predictions")
    return (
        isinstance(layout.get("model"), str)
        and isinstance(width, int)
        and width > 0
        and layout.get("rows") in DTYPES
        and (preds is None or preds in DTYPES)
        and (columns is None or (isinstance(columns, list) and len(columns) == width))
    )


def _build(
    layout: dict[str, Any], run: list[Record], on_invalid: Callable[[int], None]
) -> Iterator[SampleBatch]:
    rows_dtype = np.dtype(layout["rows"])
    preds_dtype = None if layout["predictions"] is None else np.dtype(layout["predictions"])
    width = layout["width"]
    row_bytes = width * rows_dtype.itemsize
    rows: list[bytes] = []
    preds: list[bytes] = []
    samples = 0
    for _, count, row, pred in run:
        k, rest = divmod(len(row), row_bytes)
        if rest or not k:
            on_invalid(count)
        elif preds_dtype is not None and len(pred) != k * preds_dtype.itemsize:
            yield _batch(layout, rows_dtype, None, [row], [], count)
        else:
            rows.append(row)
            preds.append(pred)
            samples += count
    if rows:
        yield _batch(layout, rows_dtype, preds_dtype, rows, preds, samples)


def _batch(
    layout: dict[str, Any],
    rows_dtype: np.dtype[Any],
    preds_dtype: np.dtype[Any] | None,
    rows: list[bytes],
    preds: list[bytes],
    samples: int,
) -> SampleBatch:
    matrix = np.frombuffer(b"".join(rows), rows_dtype).reshape(-1, layout["width"])
    predictions = None if preds_dtype is None else np.frombuffer(b"".join(preds), preds_dtype)
    return SampleBatch(layout["model"], layout["columns"], matrix, predictions, samples)
