"""The work list of a resumed job: which mini-batches of the source's plan still have to run.

Runs once, in the plan pod of the resuming job: every part record of the output is checked
(its part's sha256 recomputed) and `mlkube.builders.batch_resume.resume_work` decides. The list
is written create-only to `_mlkube/work/<job>.json`: every index and every retried pod of
the job then reads the same list even while new parts appear (a second run of this step
keeps the first list).
"""

from __future__ import annotations

from typing import Any

from mlkube.builders.batch_plan import parse_plan, plan_digest
from mlkube.builders.batch_resume import (
    PartKey,
    PartRecord,
    parse_work,
    resume_work,
    serialize_work,
)
from mlkube_serving.batch.config import ScoreConfig
from mlkube_serving.batch.output import META, verified_record


def work_name(job: str) -> str:
    return f"{META}/work/{job}.json"


def write_work(config: ScoreConfig, job: str) -> dict[str, Any]:
    """Write (or keep) the job's work list; returns its summary with its digest."""
    from mlkube_serving.batch.store import Store

    sink = Store.open(config.output_uri)
    name = work_name(job)
    if sink.exists(name):
        data = sink.read_bytes(name)
        work = parse_work(data)
    else:
        plan_bytes = sink.read_bytes(f"{META}/plan.json")
        plan = parse_plan(plan_bytes)
        digest = plan_digest(plan_bytes)
        size = {"count": plan.mini_batch_size.count, "unit": plan.mini_batch_size.unit}
        key = PartKey(digest, config.model_digest, config.settings_digest(size))
        records = []
        for batch in plan.mini_batches:
            found = verified_record(sink, batch.id, config.output_format)
            if found is not None:
                records.append(
                    PartRecord(
                        found.miniBatch, found.planDigest, found.modelDigest,
                        found.settingsDigest, found.failed, content_verified=True,
                    )
                )  # fmt: skip
        work = resume_work(plan, key, records)
        data = serialize_work(work)
        # The source's progress files name the same indexes: the operator would sum them
        # into this job's counts. This job's indexes rewrite them from zero.
        for stale in sink.list_files(f"{META}/progress"):
            sink.remove(stale)
        sink.write_atomic(name, data)
    return {
        "work": name,
        "digest": plan_digest(data),
        "remaining": len(work.remaining),
        "reused": work.reused,
        "invalidated": work.invalidated,
    }
