"""The merge step: verified parts, in mini-batch order, into `output.fileName`; manifest last.

Atomic: the merged file is built in a local temporary file and published in one rename (or
one completed multipart upload), so readers see the old file or the new one, never a prefix.
Idempotent: when `manifest.json` already lists exactly these part digests and the merged file
still has the digest it records, nothing is rewritten, so rerunning a job never fails with
"output already exists". The manifest is written last: its presence means the merge finished.
Memory is one part at a time (CSV/JSONL are streamed as bytes; Parquet part by part).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from typing import Any

from mlkube.builders.batch_plan import PlanError, parse_plan, plan_digest
from mlkube_serving.batch.output import (
    META,
    PartRecord,
    canonical,
    part_name,
    verified_record,
)
from mlkube_serving.batch.store import Store

MANIFEST = f"{META}/manifest.json"


def collect(sink: Store, fmt: str) -> tuple[str, list[PartRecord]]:
    """The plan digest and every mini-batch's verified record; PlanError when one is missing."""
    data = sink.read_bytes(f"{META}/plan.json")
    digest = plan_digest(data)
    plan = parse_plan(data)
    records, missing = [], []
    for batch in plan.mini_batches:
        record = verified_record(sink, batch.id, fmt)
        if record is None or record.planDigest != digest:
            missing.append(batch.id)
        else:
            records.append(record)
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise PlanError(f"{len(missing)} mini-batches have no verified part (first: {shown})")
    return digest, records


def totals(records: list[PartRecord]) -> dict[str, Any]:
    failed_batches = sum(1 for r in records if r.succeeded == 0 and r.failed > 0)
    return {
        "miniBatches": {
            "total": len(records),
            "succeeded": len(records) - failed_batches,
            "failed": failed_batches,
        },
        "items": {
            "total": sum(r.items for r in records),
            "succeeded": sum(r.succeeded for r in records),
            "failed": sum(r.failed for r in records),
        },
        "rows": sum(r.rows for r in records),
    }


def _write_merged(sink: Store, records: list[PartRecord], fmt: str, target: str) -> str:
    hasher = hashlib.sha256()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer: Any = None
        for record in records:
            table = pq.read_table(io.BytesIO(sink.read_bytes(part_name(record.miniBatch, fmt))))
            if table.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is not None:
            writer.close()
        with open(target, "ab") as out:  # no rows: an empty file
            pass
        with open(target, "rb") as src:
            while chunk := src.read(1 << 20):
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()
    header: bytes | None = None
    with open(target, "wb") as out:
        for record in records:
            data = sink.read_bytes(part_name(record.miniBatch, fmt))
            if not data:
                continue
            if fmt == "csv":
                first, _, rest = data.partition(b"\n")
                if header is None:
                    header = first
                    data = first + b"\n" + rest
                elif first != header:
                    raise PlanError(
                        f"part {record.miniBatch} has columns {first!r}, not {header!r}"
                    )
                else:
                    data = rest
            out.write(data)
            hasher.update(data)
    return "sha256:" + hasher.hexdigest()


def merge(output_uri: str, file_name: str, fmt: str, action: str = "appendRow") -> dict[str, Any]:
    """Merge (or confirm an earlier identical merge); returns the manifest."""
    sink = Store.open(output_uri)
    digest, records = collect(sink, fmt)
    parts = [r.sha256 for r in records]
    previous = _manifest(sink)
    if previous and previous.get("planDigest") == digest and previous.get("parts") == parts:
        merged = previous.get("output")
        if merged is None or (
            sink.exists(file_name) and sink.digest(file_name) == merged["sha256"]
        ):
            return {**previous, "unchanged": True}
    manifest: dict[str, Any] = {"planDigest": digest, "parts": parts, **totals(records)}
    if action == "appendRow":
        with tempfile.TemporaryDirectory(prefix="mlkube-merge-") as scratch:
            local = os.path.join(scratch, "merged")
            merged_digest = _write_merged(sink, records, fmt, local)
            sink.put_file_atomic(file_name, local)
        manifest["output"] = {"fileName": file_name, "format": fmt, "sha256": merged_digest}
    sink.write_atomic(MANIFEST, canonical(manifest))
    return manifest


def _manifest(sink: Store) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = json.loads(sink.read_bytes(MANIFEST))
        return found
    except Exception:  # absent or unreadable: merge again
        return None
