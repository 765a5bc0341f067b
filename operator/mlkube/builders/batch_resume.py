"""What a (resumed) batch job still has to run, given a plan and the parts already written.

Pure: the plan pod of a resumed job reads the part records, checks each part's sha256, and
calls `resume_work`; the result is written once next to the plan (`serialize_work`), so every
index and every retry of an index sees the same work list even while new parts appear. A part
is reused only when it belongs to this plan, was made by the same model with the same
settings, verified, and had no failed item: failures always rerun (docs/batch-endpoints.md §6).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlkube.builders.batch_plan import Plan, PlanError, shard


@dataclass(frozen=True)
class PartKey:
    """What a reusable part must have been made with."""

    plan_digest: str
    model_digest: str
    settings_digest: str


@dataclass(frozen=True)
class PartRecord:
    """A part record as found in the output (`_mlkube/parts/mb-*.json`), after checking."""

    mini_batch: int
    plan_digest: str
    model_digest: str
    settings_digest: str
    failed: int
    content_verified: bool
    """The caller hashed the part and it matched the record's sha256."""

    def reusable_for(self, key: PartKey) -> bool:
        return (
            self.content_verified
            and self.failed == 0
            and (self.plan_digest, self.model_digest, self.settings_digest)
            == (key.plan_digest, key.model_digest, key.settings_digest)
        )


@dataclass(frozen=True)
class Work:
    """Mini-batch ids a job runs (ascending) and how many verified parts it reuses."""

    plan_digest: str
    remaining: tuple[int, ...]
    reused: int
    invalidated: int = 0
    """Good parts of this plan made by another model or settings: run again (PartsInvalidated)."""

    def for_index(self, index: int, indexes: int) -> tuple[int, ...]:
        """The ids index `index` of `indexes` runs: a contiguous slice of `remaining`."""
        return self.remaining[slice_of(shard(index, len(self.remaining), indexes))]


def slice_of(positions: range) -> slice:
    return slice(positions.start, positions.stop)


def digest_settings(settings: Mapping[str, Any]) -> str:
    """sha256 of the settings that shape a part (mini-batch size, output format, entrypoint)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def resume_work(plan: Plan, key: PartKey, records: Iterable[PartRecord] = ()) -> Work:
    """Every mini-batch of the plan without a reusable part (all of them for a fresh job)."""
    ids = range(len(plan.mini_batches))
    records = list(records)
    done = {r.mini_batch for r in records if r.reusable_for(key) and r.mini_batch in ids}
    remaining = tuple(i for i in ids if i not in done)
    # Good parts that only the model or settings digest keeps from reuse: the operator says so.
    stale = {
        r.mini_batch
        for r in records
        if r.content_verified and r.failed == 0 and r.plan_digest == key.plan_digest
        and r.mini_batch in ids and r.mini_batch not in done
    }  # fmt: skip
    return Work(key.plan_digest, remaining, len(done), len(stale))


def compress(ids: Sequence[int]) -> list[list[int]]:
    """Ascending ids as [start, end) runs: a resume of 1M mini-batches stays a few bytes."""
    runs: list[list[int]] = []
    for value in ids:
        if runs and runs[-1][1] == value:
            runs[-1][1] = value + 1
        else:
            runs.append([value, value + 1])
    return runs


def expand(runs: Iterable[Sequence[int]]) -> tuple[int, ...]:
    out: list[int] = []
    for start, end in runs:
        if (out and start < out[-1] + 1) or end <= start:
            raise PlanError(f"work runs are not ascending and disjoint at [{start}, {end})")
        out.extend(range(start, end))
    return tuple(out)


def serialize_work(work: Work) -> bytes:
    """Canonical JSON of the work list (its digest is passed to the workers like the plan's)."""
    body = {
        "planDigest": work.plan_digest,
        "remaining": compress(work.remaining),
        "reused": work.reused,
    }
    if work.invalidated:  # absent when 0: work lists written before it keep their digest
        body["invalidated"] = work.invalidated
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_work(data: bytes) -> Work:
    try:
        raw = json.loads(data)
        return Work(
            str(raw["planDigest"]),
            expand(raw["remaining"]),
            int(raw["reused"]),
            int(raw.get("invalidated", 0)),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise PlanError(f"unreadable work list: {err}") from err
