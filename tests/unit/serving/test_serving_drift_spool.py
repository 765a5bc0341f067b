"""The drift hook over the spool and the sidecar's reader: what a server worker's sender
would have POSTed arrives as the same batches and payloads, a full ring drops and counts,
records of registered layouts are rebuilt into batches, unreadable ones are counted, and rings
of writers that are gone are drained and removed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from mlkube_serving import metrics
from mlkube_serving.drift.batch import SampleBatch
from mlkube_serving.drift.spool import SpoolReader
from mlkube_serving.drift_ring import BATCH_RECORD, JSON_RECORD, RingWriter, ring_files
from mlkube_serving.drift_spool import SpoolHook
from mlkube_serving.tensors import Tensor

URL = "http://127.0.0.1:9"  # only the JSON lane would use it
NAMES = ["a", "b", "c"]


def served(i: int, rows: int = 1, width: int = 3) -> tuple[list[Tensor], list[Tensor]]:
    data = np.arange(rows * width, dtype=np.float64).reshape(rows, width) + 10 * i
    return [Tensor("input-0", data, "FP64")], [Tensor("predict", np.full(rows, i), "INT64")]


class Collected:
    """The sidecar worker's `submit` and `count_invalid`, keeping what they get."""

    def __init__(self, directory: Path) -> None:
        self.batches: list[SampleBatch] = []
        self.payloads: list[dict[str, Any]] = []
        self.invalid = 0
        self.invalid_bodies = 0
        self.reader = SpoolReader(directory, self.submit, self.count_invalid)

    def submit(self, payload: object, rows: int, size: int) -> None:
        assert size > 0
        if isinstance(payload, dict):
            assert len(payload["rows"]) == rows
            self.payloads.append(payload)
            return
        assert isinstance(payload, SampleBatch) and payload.count == rows
        self.batches.append(payload)

    def count_invalid(self, rows: int) -> None:
        self.invalid += rows
        self.invalid_bodies += rows == 0

    def poll(self) -> list[SampleBatch]:
        self.reader.poll()
        self.reader.poll()  # records are taken one poll after they are published
        batches, self.batches = self.batches, []
        return batches


def sent(model: str) -> float:
    return float(metrics.DRIFT_SENT.labels(model)._value.get())


def dropped(model: str, reason: str = "post_failed") -> float:
    return float(metrics.DRIFT_DROPPED.labels(model, reason)._value.get())


def test_samples_arrive_as_the_batches_http_sends(tmp_path: Path) -> None:
    hook = SpoolHook(URL, 1.0, str(tmp_path))
    side = Collected(tmp_path)
    for i in range(10):
        hook.offer("spool-a", NAMES, *served(i, rows=1 + i % 2))
    assert side.poll() == []  # held by the lane until the sender runs
    before = sent("spool-a")
    assert asyncio.run(hook.flush())
    assert sent("spool-a") - before == 10
    batches = side.poll()
    assert len(batches) == 1
    batch = batches[0]
    assert (batch.model, batch.columns, batch.samples, batch.count) == ("spool-a", NAMES, 10, 15)
    expected = np.concatenate([served(i, rows=1 + i % 2)[0][0].data for i in range(10)])
    assert np.array_equal(batch.rows, expected)
    assert batch.predictions is not None
    assert batch.predictions.tolist() == [i for i in range(10) for _ in range(1 + i % 2)]


def test_text_rows_and_buffered_samples_take_the_ring_too(tmp_path: Path) -> None:
    hook = SpoolHook(URL, 1.0, str(tmp_path))
    side = Collected(tmp_path)
    text = np.array([["x", "y", "z"]], dtype=object)
    hook.offer("spool-b", NAMES, [Tensor("input-0", text, "BYTES")], served(0)[1])
    wide = np.arange(130.0 * 3).reshape(130, 3)  # more than max_rows: the copying buffers
    hook.offer("spool-b", NAMES, [Tensor("input-0", wide, "FP64")], served(1, rows=130)[1])
    assert asyncio.run(hook.flush())
    got = side.poll()
    payloads = [p for p in side.payloads]
    assert [(b.samples, b.count) for b in got] == [(1, 64)]
    assert len(payloads) == 1 and payloads[0]["rows"] == [["x", "y", "z"]]


def test_a_full_ring_drops_and_counts(tmp_path: Path) -> None:
    hook = SpoolHook(URL, 1.0, str(tmp_path), ring_bytes=4096, batch_rows=100)
    side = Collected(tmp_path)
    for i in range(100):  # one batch of 100 x 32 bytes: more than half the ring
        hook.offer("spool-d", NAMES, *served(i))
    before = dropped("spool-d")
    assert not asyncio.run(hook.flush())
    assert dropped("spool-d") - before == 100
    assert side.poll() == []


def test_a_body_that_is_not_a_batch_is_counted_not_read(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, 4096)
    side = Collected(tmp_path)
    writer.put(BATCH_RECORD, 0, b"not a batch", 11, b"", 0)
    writer.put(JSON_RECORD, 0, b"{not json", 9, b"", 0)
    assert side.poll() == [] and side.payloads == []
    assert side.invalid_bodies == 2


def test_a_record_not_matching_its_layout_is_counted_not_read(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, 4096)
    side = Collected(tmp_path)
    layout = writer.layout("m", None, 3, np.dtype("<f8"), np.dtype("<i8"))
    bad = np.zeros(5)  # 40 bytes: not a whole number of 24-byte rows
    writer.put(layout, 1, bad, bad.nbytes, np.zeros(1, np.int64), 8)
    rows = np.zeros((2, 3))
    writer.put(layout, 1, rows, rows.nbytes, np.zeros(1, np.int64), 8)  # one prediction short
    unknown = 7  # an id the layouts file does not name
    writer.written.extend([0] * 8)
    writer.put(unknown, 1, rows, rows.nbytes, b"", 0)
    batches = side.poll()
    assert [(b.count, b.predictions) for b in batches] == [(2, None)]
    assert side.invalid == 2


def test_rings_of_writers_that_are_gone_are_drained_and_removed(tmp_path: Path) -> None:
    side = Collected(tmp_path)
    first = SpoolHook(URL, 1.0, str(tmp_path))
    first.offer("spool-f", NAMES, *served(0))
    asyncio.run(first.stop(timeout=1))  # a worker that stopped (or died: its lock is gone too)
    second = SpoolHook(URL, 1.0, str(tmp_path))
    second.offer("spool-f", NAMES, *served(1))
    asyncio.run(second.flush())
    got = side.poll()
    assert sorted(b.rows[0, 0] for b in got) == [0.0, 10.0]
    assert ring_files(tmp_path) == [second.ring.path]
    second.offer("spool-f", NAMES, *served(2))
    asyncio.run(second.stop(timeout=1))
    second.offer("spool-f", NAMES, *served(3))  # after stop: never written
    assert asyncio.run(second.flush()) is False
    assert [b.rows[0, 0] for b in side.poll()] == [20.0]
    assert list(tmp_path.iterdir()) == []


def test_records_of_several_layouts_keep_their_order_and_columns(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, 4096)
    side = Collected(tmp_path)
    f8, i8 = np.dtype("<f8"), np.dtype("<i8")
    three = writer.layout("m", NAMES, 3, f8, i8)
    two = writer.layout("m", ["x", "y"], 2, f8, i8)
    for layout, i, width in [(three, 0, 3), (two, 1, 2), (two, 2, 2), (three, 3, 3)]:
        rows, pred = np.full((1, width), float(i)), np.array([i])
        assert writer.put(layout, 1, rows, rows.nbytes, pred, pred.nbytes)
    got = [(b.columns, b.rows[:, 0].tolist(), b.samples) for b in side.poll()]
    assert got == [(NAMES, [0.0], 1), (["x", "y"], [1.0, 2.0], 2), (NAMES, [3.0], 1)]
