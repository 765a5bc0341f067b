"""The output layout of a batch job (docs/batch-endpoints.md §5) and its commit protocol.

A mini-batch's results become a *part* (`_mlkube/parts/mb-NNNNNNNNN.<fmt>`), its failed items a
dead-letter file (`_mlkube/deadletter/mb-NNNNNNNNN.jsonl`, one `{item, error, attempt}` per
line), and its *record* (`mb-NNNNNNNNN.json`: digests, counts, the part's sha256) is written
last: a record is the commit point, so a part without a record is garbage from a killed
worker and is simply rewritten. Each object is written atomically (`Store.write_atomic`).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlkube_serving.batch.store import Store

if TYPE_CHECKING:  # merge and the scorer's parent never build a frame: pandas stays unloaded
    import pandas as pd

META = "_mlkube"
FORMATS = ("csv", "jsonl", "parquet")


def part_name(mini_batch: int, fmt: str) -> str:
    return f"{META}/parts/mb-{mini_batch:09d}.{fmt}"


def record_name(mini_batch: int) -> str:
    return f"{META}/parts/mb-{mini_batch:09d}.json"


def deadletter_name(mini_batch: int) -> str:
    return f"{META}/deadletter/mb-{mini_batch:09d}.jsonl"


def progress_name(index: int) -> str:
    return f"{META}/progress/index-{index:05d}.json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class PartRecord:
    """What the record of one mini-batch says (the commit point of its part)."""

    planDigest: str
    modelDigest: str
    settingsDigest: str
    miniBatch: int
    format: str
    items: int
    succeeded: int
    failed: int
    rows: int
    attempt: int
    sha256: str

    @classmethod
    def parse(cls, data: bytes) -> PartRecord:
        raw = json.loads(data)
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__})


def encode_frame(frame: pd.DataFrame, fmt: str) -> bytes:
    """A part's bytes; an empty result is an empty part (no header) in every format."""
    if len(frame) == 0 and fmt != "parquet":
        return b""
    if fmt == "csv":
        if len(frame.columns) and all(t.kind in "iu" for t in frame.dtypes):
            return _integer_csv(frame)
        text: str = frame.to_csv(index=False, lineterminator="\n")
        return text.encode()
    if fmt == "jsonl":
        lines: str = frame.to_json(orient="records", lines=True, double_precision=15)
        return lines.encode()
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise ValueError(f"unknown output format {fmt!r}; known: {', '.join(FORMATS)}")


def _integer_csv(frame: pd.DataFrame) -> bytes:
    """Integer columns (class labels) through pyarrow's writer, ~10x pandas' speed; the bytes
    equal pandas' for integers (floats keep pandas' text, which pyarrow would spell otherwise)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = ",".join(_csv_name(str(c)) for c in frame.columns) + "\n"
    buffer = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer, options)
    return header.encode() + buffer.getvalue()


def _csv_name(name: str) -> str:
    if any(ch in name for ch in ',"\n\r'):
        return '"' + name.replace('"', '""') + '"'
    return name


def write_part(
    store: Store,
    record: PartRecord,
    frame: pd.DataFrame,
    failed: Sequence[tuple[Any, str]],
) -> PartRecord:
    """Part, then dead letters, then the record (commit). Returns the record with its sha256."""
    data = encode_frame(frame, record.format)
    store.write_atomic(part_name(record.miniBatch, record.format), data)
    if failed:
        lines = [
            canonical({"item": item, "error": error, "attempt": record.attempt})
            for item, error in failed
        ]
        store.write_atomic(deadletter_name(record.miniBatch), b"\n".join(lines) + b"\n")
    final = PartRecord(**{**asdict(record), "sha256": sha256(data), "rows": len(frame)})
    store.write_atomic(record_name(record.miniBatch), canonical(asdict(final)))
    return final


def verified_record(store: Store, mini_batch: int, fmt: str) -> PartRecord | None:
    """The committed record of a mini-batch when its part's bytes still match, else None."""
    try:
        record = PartRecord.parse(store.read_bytes(record_name(mini_batch)))
        if record.format != fmt or record.miniBatch != mini_batch:
            return None
        data = store.read_bytes(part_name(mini_batch, fmt))
    except Exception:  # absent, unreadable or foreign: not verified, the mini-batch reruns
        return None
    return record if sha256(data) == record.sha256 else None


def write_progress(store: Store, index: int, body: dict[str, Any]) -> None:
    """Overwrite the index's live counts (≤ 4 KiB: errors are trimmed by the caller)."""
    store.write_atomic(progress_name(index), canonical(body))
