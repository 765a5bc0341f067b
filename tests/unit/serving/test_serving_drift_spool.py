"""The drift hook over the spool and the sidecar's reader: what a server worker offers arrives
as the same batches the HTTP path sends, full rings drop and count, other threads' samples and
odd layouts take the buffers, and rings of writers that are gone are drained and removed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from mlkube_serving import metrics
from mlkube_serving.drift.batch import SampleBatch
from mlkube_serving.drift.spool import SpoolReader
from mlkube_serving.drift_ring import RingWriter, ring_files
from mlkube_serving.drift_spool import SpoolHook
from mlkube_serving.tensors import Tensor

URL = "http://127.0.0.1:9"  # only the JSON lane would use it
NAMES = ["a", "b", "c"]


def served(i: int, rows: int = 1, width: int = 3) -> tuple[list[Tensor], list[Tensor]]:
    data = np.arange(rows * width, dtype=np.float64).reshape(rows, width) + 10 * i
    return [Tensor("input-0", data, "FP64")], [Tensor("predict", np.full(rows, i), "INT64")]


class Collected:
    def __init__(self, directory: Path) -> None:
        self.batches: list[SampleBatch] = []
        self.invalid = 0
        self.reader = SpoolReader(directory, self.submit, self.count_invalid)

    def submit(self, batch: object, rows: int, size: int) -> None:
        assert isinstance(batch, SampleBatch) and batch.count == rows and size > 0
        self.batches.append(batch)

    def count_invalid(self, rows: int) -> None:
        self.invalid += rows

    def poll(self) -> list[SampleBatch]:
        self.reader.poll()
        self.reader.poll()  # records are taken one poll after they are published
        batches, self.batches = self.batches, []
        return batches


def hook_on_this_thread(directory: Path, **options: object) -> SpoolHook:
    hook = SpoolHook(URL, 1.0, str(directory), **options)  # type: ignore[arg-type]
    hook._writer = threading.get_ident()  # what start() records on the worker's loop
    return hook


def sent(model: str) -> float:
    return float(metrics.DRIFT_SENT.labels(model)._value.get())


def dropped(model: str, reason: str = "queue_full") -> float:
    return float(metrics.DRIFT_DROPPED.labels(model, reason)._value.get())


def test_samples_arrive_as_the_batches_http_sends(tmp_path: Path) -> None:
    hook = hook_on_this_thread(tmp_path)
    side = Collected(tmp_path)
    for i in range(10):
        hook.offer("spool-a", NAMES, *served(i, rows=1 + i % 2))
    batches = side.poll()
    assert len(batches) == 1
    batch = batches[0]
    assert (batch.model, batch.columns, batch.samples, batch.count) == ("spool-a", NAMES, 10, 15)
    expected = np.concatenate([served(i, rows=1 + i % 2)[0][0].data for i in range(10)])
    assert np.array_equal(batch.rows, expected)
    assert batch.predictions is not None
    assert batch.predictions.tolist() == [i for i in range(10) for _ in range(1 + i % 2)]
    before = sent("spool-a")
    asyncio.run(hook.flush())
    assert sent("spool-a") - before == 10


def test_layouts_keep_their_order_and_columns(tmp_path: Path) -> None:
    hook = hook_on_this_thread(tmp_path)
    side = Collected(tmp_path)
    other = ["x", "y"]
    hook.offer("spool-b", NAMES, *served(0))
    hook.offer("spool-b", other, *served(1, width=2))
    hook.offer("spool-b", other, *served(2, width=2))
    hook.offer("spool-c", None, *served(3))
    hook.offer("spool-b", NAMES, *served(4))
    got = [(b.model, b.columns, b.rows[:, 0].tolist()) for b in side.poll()]
    assert got == [("spool-b", NAMES, [0.0]), ("spool-b", other, [10.0, 20.0]),
                   ("spool-c", None, [30.0]), ("spool-b", NAMES, [40.0])]  # fmt: skip


def test_a_full_ring_drops_and_counts(tmp_path: Path) -> None:
    hook = hook_on_this_thread(tmp_path, ring_bytes=4096)
    side = Collected(tmp_path)
    for i in range(200):  # 48-byte records: 85 fit
        hook.offer("spool-d", NAMES, *served(i))
    before = dropped("spool-d")
    hook.publish_drops()
    assert dropped("spool-d") - before == 200 - 85
    assert sum(b.count for b in side.poll()) == 85


def test_other_threads_and_odd_samples_take_the_buffers_into_the_ring(tmp_path: Path) -> None:
    hook = hook_on_this_thread(tmp_path)
    side = Collected(tmp_path)
    thread = threading.Thread(target=hook.offer, args=("spool-e", NAMES, *served(1)))
    thread.start()
    thread.join()
    data = np.arange(12.0).reshape(3, 4)[:, :3]  # not C-contiguous
    hook.offer("spool-e", NAMES, [Tensor("input-0", data, "FP64")], served(2, rows=3)[1])
    assert side.poll() == []  # held in the copying buffers until the sender's flush
    asyncio.run(hook.flush())
    batches = side.poll()
    assert [(b.samples, b.count) for b in batches] == [(2, 4)]
    assert batches[0].rows.tolist()[1:] == data.tolist()


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
    first = hook_on_this_thread(tmp_path)
    first.offer("spool-f", NAMES, *served(0))
    side.reader.poll()  # opened, the record not yet taken
    first.ring.close()  # a worker that stopped (or died: its lock is gone either way)
    second = hook_on_this_thread(tmp_path)
    second.offer("spool-f", NAMES, *served(1))
    got = side.poll()
    assert sorted(b.rows[0, 0] for b in got) == [0.0, 10.0]
    assert ring_files(tmp_path) == [second.ring.path]


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_a_stopped_hook_writes_nothing_more(tmp_path: Path, rate: float) -> None:
    async def run() -> SpoolHook:
        hook = SpoolHook(URL, rate, str(tmp_path))
        hook.start()
        hook.offer("spool-g", NAMES, *served(0))
        await hook.stop(timeout=0.5)
        hook.offer("spool-g", NAMES, *served(1))  # after stop: the buffers, never the ring
        return hook

    hook = asyncio.run(run())
    side = Collected(tmp_path)
    assert [b.rows[0, 0] for b in side.poll()] == [0.0]
    assert hook.pending() == 1
    assert ring_files(tmp_path) == []  # the writer closed its ring: drained and removed
