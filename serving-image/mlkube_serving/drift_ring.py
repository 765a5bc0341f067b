"""A shared-memory ring of drift samples: one model-server worker writes, the sidecar reads.

Why (docs/benchmarks/drift-overhead.md, fifth pass): a loopback POST of each batch cost the
server ~0.34 us a sample at 100%. Here the worker's sender copies the batch body it would have
POSTed into a file in a memory-backed directory (`MLKUBE_DRIFT_SPOOL_DIR`, an emptyDir both
containers mount), mmap'ed by both: one memcpy, no socket. Records are either such a body
(`BATCH_RECORD`, `JSON_RECORD`) or one sample's rows and predictions under a registered layout
(what writing each sample from the request path would use; measured, and left out: it cost
the request path more than the POST costs).

File `<pid>-<token>.ring`: a 256-byte header, then `capacity` data bytes (a power of two).
    0   magic `RING_MAGIC`        8   capacity (uint64)
    64  write position (uint64, the writer's only)     128 read position (uint64, the reader's)
Positions count bytes since creation (offset = position % capacity). A record is 8-aligned:
    commit (uint64) | fields (uint64: layout 8 bits, samples 16, rows bytes 24, prediction
    bytes 16, from the low bits) | rows | predictions | padding
The commit word is the record's own position, stored last of the record: the reader checks
it, so a record not written there in this lap (a torn position, stale data) is never taken.
A record that does not fit before the end of the data starts the next lap: a `PAD` record
(or nothing, when fewer than 16 bytes are left) fills the tail. The writer stores the record,
then the write position; the reader copies records out, then stores its read position, which
the writer checks for room (full: the writer drops). The reader takes only records published
one poll earlier, so no store of a record can still be in flight on a weakly ordered CPU.
Layouts (model, columns, width, dtypes) go to `<stem>.layouts`, one JSON line each, written
before the first record that names them. The writer holds an exclusive `flock` on the ring for
its life: a reader that can take the lock knows the writer is gone (PIDs do not cross
containers), drains the ring and removes both files.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import secrets
import struct
from pathlib import Path
from typing import Any

import orjson

RING_MAGIC = b"MKDRING1"
RING_SUFFIX = ".ring"
LAYOUTS_SUFFIX = ".layouts"
HEADER_BYTES = 256
WRITE_AT, READ_AT = 64, 128  # separate cache lines: one writer each
RECORD = struct.Struct("<QQ")  # commit word (the record's position), fields word
RECORD_BYTES = 16
DATA_AT = HEADER_BYTES + RECORD_BYTES  # where the first record's payload starts in the file
# The fields word: layout (8 bits) | samples (16) | rows bytes (24) | prediction bytes (16).
PAD = 0xFF
BATCH_RECORD = 0xFE  # the payload is a whole binary batch (the `drift_batch` format)
JSON_RECORD = 0xFD  # the payload is a JSON samples body (text rows)
MAX_LAYOUTS = 0xFD  # layout ids 0..252: rows and predictions of a registered layout
MAX_SAMPLES = 0xFFFF
MAX_ROWS_BYTES = 0xFFFFFF
MAX_PREDS_BYTES = 0xFFFF
DEFAULT_CAPACITY = 4 * 1024 * 1024


def ring_files(directory: Path) -> list[Path]:
    """The published rings in `directory` (a ring being created has another suffix)."""
    try:
        return sorted(p for p in directory.iterdir() if p.name.endswith(RING_SUFFIX))
    except FileNotFoundError:
        return []


def fields_word(layout: int, samples: int, rows_len: int, preds_len: int) -> int:
    """The second word of a record's header."""
    return layout | samples << 8 | rows_len << 24 | preds_len << 48


def layouts_path(ring: Path) -> Path:
    return ring.with_suffix(LAYOUTS_SUFFIX)


class RingWriter:
    """The writer's end: `put` copies one record in or returns False (full: drop)."""

    def __init__(self, directory: str | os.PathLike[str], capacity: int = DEFAULT_CAPACITY):
        if capacity < 4096 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity {capacity} must be a power of two >= 4096")
        folder = Path(directory)
        stem = folder / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.path = stem.with_suffix(RING_SUFFIX)
        building = stem.with_suffix(".new")
        self._fd = os.open(building, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # Allocated now: a full memory volume fails here, not with SIGBUS on a later write.
            os.posix_fallocate(self._fd, 0, HEADER_BYTES + capacity)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            # Page tables filled now, not by a fault on the sender's first lap.
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            self._mm = mmap.mmap(self._fd, HEADER_BYTES + capacity, flags)
        except BaseException:
            os.close(self._fd)
            building.unlink()
            raise
        self._mm[0:16] = RING_MAGIC + capacity.to_bytes(8, "little")
        self._layouts = open(layouts_path(self.path), "ab")  # noqa: SIM115 (lives with the ring)
        os.rename(building, self.path)  # published: the reader may open it from now on
        self.capacity = capacity
        self.mask = capacity - 1
        self._views = memoryview(self._mm)
        self._write_pos = self._views[WRITE_AT : WRITE_AT + 8].cast("Q")
        self._read_pos = self._views[READ_AT : READ_AT + 8].cast("Q")
        self._words = self._views[HEADER_BYTES:].cast("Q")  # record headers: two words
        # The hot path (`SpoolHook.offer` inlines `put`) reads these directly.
        self.mm = self._mm
        self.words = self._words
        self.published = self._write_pos
        self.w = 0  # the write position, kept here too: the shared one is only stored
        self.stop = capacity  # records may end up to here: the lap's end, the reader's room
        self._r = 0  # the read position as last loaded
        self._ids: dict[tuple[Any, ...], int] = {}
        self.models: list[str] = []  # by layout id
        self.written: list[int] = []  # samples written, by layout id (the sender publishes)

    def layout(
        self, model: str, columns: list[str] | None, width: int, rows: Any, predictions: Any
    ) -> int | None:
        """The id of a layout (dtypes as numpy dtypes), registered on first use; None when
        `MAX_LAYOUTS` are taken."""
        key = (model, None if columns is None else tuple(columns), width, rows.str,
               None if predictions is None else predictions.str)  # fmt: skip
        found = self._ids.get(key)
        if found is not None:
            return found
        if len(self._ids) >= MAX_LAYOUTS:
            return None
        ident = len(self._ids)
        line = {"id": ident, "model": model, "columns": columns, "width": width,
                "rows": key[3], "predictions": key[4]}  # fmt: skip
        self._layouts.write(orjson.dumps(line) + b"\n")
        self._layouts.flush()  # in the page cache before any record names it
        self._ids[key] = ident
        self.models.append(model)
        self.written.append(0)
        return ident

    def put(self, layout: int, samples: int, rows: Any, rows_len: int, preds: Any,
            preds_len: int) -> bool:  # fmt: skip
        """Copy one record (`rows`, `preds`: C-contiguous buffers of those lengths) in; False
        when the reader has not made room. Never blocks. Single writer: the worker's event
        loop only (no lock: one costs as much as the copies)."""
        if samples > MAX_SAMPLES or rows_len > MAX_ROWS_BYTES or preds_len > MAX_PREDS_BYTES:
            return False
        size = (RECORD_BYTES + 7 + rows_len + preds_len) & -8
        if size > self.capacity // 2:
            return False  # would hold up the ring: not a record for it
        if self.w + size > self.stop and not self.make_room(size):
            return False
        w = self.w
        offset = w & self.mask
        at = DATA_AT + offset
        mm = self.mm
        mm[at : at + rows_len] = rows
        mm[at + rows_len : at + rows_len + preds_len] = preds
        i = offset >> 3
        self.words[i + 1] = fields_word(layout, samples, rows_len, preds_len)
        self.words[i] = w  # the commit word, last
        self.w = w = w + size
        self.published[0] = w  # publish: one aligned 8-byte store, after the record
        if layout < MAX_LAYOUTS:
            self.written[layout] += samples
        return True

    def make_room(self, size: int) -> bool:
        """Look at the reader's position again and, at the end of the data, fill the tail with
        a pad so the next record starts the next lap; True if `size` bytes now fit."""
        offset = self.w & self.mask
        tail = self.capacity - offset if offset + size > self.capacity else 0
        if self.w + tail + size - self._r > self.capacity:
            self._r = self._read_pos[0]
            if self.w + tail + size - self._r > self.capacity:
                return False
        if tail >= RECORD_BYTES:
            self.words[(offset >> 3) + 1] = PAD
            self.words[offset >> 3] = self.w
        self.w += tail
        lap_end = (self.w | self.mask) + 1
        self.stop = min(lap_end, self._r + self.capacity)
        return True

    def pending(self) -> int:
        """Bytes written that the reader has not taken yet."""
        return self.w - self._read_pos[0]

    def close(self) -> None:
        """Stop writing; the reader drains what is left and removes the files."""
        self._write_pos.release()
        self._read_pos.release()
        self._words.release()
        self._views.release()
        self._mm.close()
        self._layouts.close()
        os.close(self._fd)  # releases the lock


Record = tuple[int, int, bytes, bytes]  # (layout id, samples, rows bytes, prediction bytes)


class RingReader:
    """The reader's end: `take` copies out the published records and frees their room."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(self._fd).st_size
            self._mm = mmap.mmap(self._fd, size)
        except BaseException:
            os.close(self._fd)
            raise
        capacity = int.from_bytes(self._mm[8:16], "little")
        if self._mm[0:8] != RING_MAGIC or size != HEADER_BYTES + capacity or capacity < 4096:
            self.close()
            raise ValueError(f"{path} is not a drift ring")
        self.capacity = capacity
        self.mask = capacity - 1
        self._views = memoryview(self._mm)
        self._write_pos = self._views[WRITE_AT : WRITE_AT + 8].cast("Q")
        self._read_pos = self._views[READ_AT : READ_AT + 8].cast("Q")
        self._r = self._read_pos[0]  # a restarted reader resumes where the last one stopped
        self._seen = self._r  # the write position seen at the previous take
        self.corrupt = 0  # times a record was not the one expected (skipped to the end)
        self.layouts: dict[int, dict[str, Any]] = {}

    def take(self, everything: bool = False) -> list[Record]:
        """The records published before the previous call (all published ones with
        `everything`: the writer is gone), copied out; their room is then given back."""
        now = self._write_pos[0]
        limit = now if everything else min(self._seen, now)
        self._seen = now
        mm, mask, r = self._mm, self.mask, self._r
        out: list[Record] = []
        while r < limit:
            offset = r & mask
            tail = self.capacity - offset
            if tail < RECORD.size:
                r += tail
                continue
            commit, word = RECORD.unpack_from(mm, HEADER_BYTES + offset)
            layout, samples = word & 0xFF, word >> 8 & 0xFFFF
            rows_len, preds_len = word >> 24 & 0xFFFFFF, word >> 48
            size = (RECORD_BYTES + 7 + rows_len + preds_len) & -8
            if commit != r or (layout != PAD and (size > tail or r + size > limit)):
                self.corrupt += 1  # not the record written here: never taken; resynchronise
                r = limit
                break
            if layout == PAD:
                r += tail
                continue
            at = HEADER_BYTES + offset + RECORD.size
            out.append((layout, samples, mm[at : at + rows_len],
                        mm[at + rows_len : at + rows_len + preds_len]))  # fmt: skip
            r += size
        self._r = r
        self._read_pos[0] = r  # after the copies: the writer may now reuse the room
        return out

    def load_layouts(self) -> dict[int, dict[str, Any]]:
        """Every complete layout line of the ring's side file, by id."""
        try:
            text = layouts_path(self.path).read_bytes()
        except FileNotFoundError:
            return self.layouts
        for line in text.split(b"\n")[:-1]:  # the last piece is empty or still being written
            try:
                layout = orjson.loads(line)
                self.layouts[int(layout["id"])] = layout
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        return self.layouts

    def writer_gone(self) -> bool:
        """True once the writer has closed the ring or died (its lock is free)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        for name in ("_write_pos", "_read_pos", "_views"):
            view = getattr(self, name, None)
            if view is not None:
                view.release()
        self._mm.close()
        os.close(self._fd)

    def remove(self) -> None:
        """Close and delete the ring and its layouts (the writer is gone)."""
        self.close()
        for path in (self.path, layouts_path(self.path)):
            path.unlink(missing_ok=True)
