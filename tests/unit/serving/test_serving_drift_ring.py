"""The samples ring shared by a server worker and the drift sidecar: round trip, laps, a full
ring, records not (yet) to be read, a writer that is gone, and a model of both ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube_serving.drift_ring import (
    HEADER_BYTES,
    RECORD_BYTES,
    WRITE_AT,
    RingReader,
    RingWriter,
    layouts_path,
    ring_files,
)

F8, I8 = np.dtype("<f8"), np.dtype("<i8")
SMALL = 4096


def record(i: int, rows: int = 1, width: int = 3) -> tuple[np.ndarray, np.ndarray]:
    data = np.arange(rows * width, dtype=np.float64).reshape(rows, width) + 100 * i
    return data, np.full(rows, i, dtype=np.int64)


def put(writer: RingWriter, layout: int, i: int, rows: int = 1) -> bool:
    data, pred = record(i, rows)
    return writer.put(layout, 1, data, data.nbytes, pred, pred.nbytes)


def test_round_trip_after_one_poll(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, SMALL)
    layout = writer.layout("m", ["a", "b", "c"], 3, F8, I8)
    reader = RingReader(ring_files(tmp_path)[0])
    for i in range(5):
        assert put(writer, layout, i)
    assert reader.take() == []  # published after the previous take: the next one takes them
    taken = reader.take()
    assert [(lid, n) for lid, n, _, _ in taken] == [(layout, 1)] * 5
    for i, (_, _, rows, preds) in enumerate(taken):
        data, pred = record(i)
        assert rows == data.tobytes() and preds == pred.tobytes()
    assert reader.load_layouts()[layout] == {"id": layout, "model": "m", "columns": ["a", "b",
                                             "c"], "width": 3, "rows": "<f8",
                                             "predictions": "<i8"}  # fmt: skip
    assert writer.pending() == 0  # the reader gave the room back


def test_records_wrap_around_the_end_of_the_data(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, SMALL)
    layout = writer.layout("m", None, 3, F8, I8)
    reader = RingReader(writer.path)
    got: list[bytes] = []
    written = 0
    for i in range(400):  # ~10 laps of 4 KiB, records of 1-3 rows (48 to 104 bytes)
        assert put(writer, layout, i, rows=1 + i % 3)
        written += 1
        if i % 7 == 0:
            got += [rows for _, _, rows, _ in reader.take()]
    got += [rows for _, _, rows, _ in reader.take() + reader.take()]
    assert writer.w > 5 * SMALL and reader.corrupt == 0
    assert got == [record(i, 1 + i % 3)[0].tobytes() for i in range(written)]


def test_a_full_ring_refuses_and_frees_when_read(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, SMALL)
    layout = writer.layout("m", None, 3, F8, I8)
    kept = 0
    while put(writer, layout, kept):
        kept += 1
    assert kept == SMALL // (RECORD_BYTES + 24 + 8)  # 48-byte records: 85 fit in 4 KiB
    assert not put(writer, layout, kept)  # still full: refused again, nothing overwritten
    reader = RingReader(writer.path)
    reader.take()
    assert len(reader.take()) == kept
    assert put(writer, layout, kept)  # room again


def test_an_unpublished_or_uncommitted_record_is_never_read(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, SMALL)
    layout = writer.layout("m", None, 3, F8, I8)
    reader = RingReader(writer.path)
    assert put(writer, layout, 0)
    # A second record written but its position not published yet (the writer stopped between).
    published = writer.published[0]
    assert put(writer, layout, 1)
    writer.published[0] = published
    reader.take()
    assert len(reader.take()) == 1
    writer.published[0] = writer.w
    # A published position over a record whose commit word is not its position (torn or stale).
    start = writer.w
    assert put(writer, layout, 2)
    offset = HEADER_BYTES + start % SMALL
    writer.mm[offset : offset + 8] = (12345).to_bytes(8, "little")
    taken = reader.take() + reader.take()
    assert [rows for _, _, rows, _ in taken] == [record(1)[0].tobytes()]
    assert reader.corrupt == 1
    assert put(writer, layout, 3)  # the reader resynchronised at the published position
    reader.take()
    assert [rows for _, _, rows, _ in reader.take()] == [record(3)[0].tobytes()]


def test_a_record_bigger_than_half_the_ring_is_refused(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, SMALL)
    layout = writer.layout("m", None, 3, F8, I8)
    assert not put(writer, layout, 0, rows=SMALL // 48)
    assert writer.w == 0


def test_a_closed_writer_is_drained_then_removed(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, SMALL)
    layout = writer.layout("m", None, 3, F8, I8)
    reader = RingReader(writer.path)
    assert not reader.writer_gone()
    assert put(writer, layout, 0)
    writer.close()
    assert reader.writer_gone()
    assert len(reader.take(everything=True)) == 1  # no poll's delay: nothing is in flight
    path = reader.path
    reader.remove()
    assert not path.exists() and not layouts_path(path).exists()


def test_a_killed_writer_frees_its_lock(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys, time, numpy as np
        from mlkube_serving.drift_ring import RingWriter
        w = RingWriter({str(tmp_path)!r}, {SMALL})
        lid = w.layout("m", None, 2, np.dtype("<f8"), np.dtype("<i8"))
        a, p = np.ones((1, 2)), np.ones(1, dtype=np.int64)
        w.put(lid, 1, a, 16, p, 8)
        print("ready", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        reader = RingReader(ring_files(tmp_path)[0])
        assert not reader.writer_gone()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert reader.writer_gone()
        assert len(reader.take(everything=True)) == 1
        reader.remove()
        assert ring_files(tmp_path) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_restarted_reader_resumes_at_the_shared_read_position(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path, SMALL)
    layout = writer.layout("m", None, 3, F8, I8)
    first = RingReader(writer.path)
    for i in range(3):
        put(writer, layout, i)
    first.take()
    assert len(first.take()) == 3
    first.close()
    put(writer, layout, 3)
    second = RingReader(writer.path)
    second.take()
    assert [rows for _, _, rows, _ in second.take()] == [record(3)[0].tobytes()]


def test_only_rings_are_listed_and_the_file_is_checked(tmp_path: Path) -> None:
    (tmp_path / "1-x.new").write_bytes(b"")  # a ring still being created
    (tmp_path / "2-y.ring").write_bytes(b"not a ring" * 500)
    assert ring_files(tmp_path) == [tmp_path / "2-y.ring"]
    with pytest.raises(ValueError, match="not a drift ring"):
        RingReader(tmp_path / "2-y.ring")
    assert ring_files(tmp_path / "missing") == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=300))
def test_the_reader_gets_exactly_what_was_accepted_in_order(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, bool]]
) -> None:
    """A model of both ends: records of random sizes, reads at random moments. Accepted
    records all arrive, in order, intact; a refusal happens only when the room is short."""
    writer = RingWriter(tmp_path_factory.mktemp("ring"), SMALL)
    layout = writer.layout("m", None, 3, F8, I8)
    reader = RingReader(writer.path)
    accepted: list[bytes] = []
    got: list[bytes] = []
    for i, (rows, read) in enumerate(steps):
        data, pred = record(i, rows)
        room = SMALL - (writer.w - int.from_bytes(writer.mm[WRITE_AT + 64 : WRITE_AT + 72],
                                                  "little"))  # fmt: skip
        size = (RECORD_BYTES + data.nbytes + pred.nbytes + 7) & -8
        if writer.put(layout, 1, data, data.nbytes, pred, pred.nbytes):
            accepted.append(data.tobytes() + pred.tobytes())
        else:
            tail = SMALL - writer.w % SMALL
            assert size > room - (tail if tail < size else 0)
        if read:
            got += [rows + preds for _, _, rows, preds in reader.take()]
    got += [rows + preds for _, _, rows, preds in reader.take() + reader.take()]
    assert got == accepted and reader.corrupt == 0
    writer.close()
    reader.remove()
