"""Score one mini-batch and commit its part: the body of a worker process's loop.

Files mode accounts per file (a file that cannot be read or that the model refuses is one
failed item with its error; the rest of the mini-batch is kept). Rows mode accounts per row
where a row can be named (batch/rows.py: a line that does not parse, a value that is not a
number is one failed item; the others are scored) and per mini-batch otherwise: an unreadable
unit or a refused chunk raises `MiniBatchFailed`, which the parent retries and, after the last
retry, commits as a part whose items all failed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlkube.builders.batch_plan import MiniBatch, Plan
from mlkube_serving.batch.config import ScoreConfig
from mlkube_serving.batch.output import PartRecord, write_part
from mlkube_serving.batch.store import Store

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the parent imports this module too and never scores: keep it light
    from mlkube_serving.batch.scoring import ModelScorer, ScriptScorer


@dataclass(frozen=True)
class Job:
    """A worker's fixed context: the plan's facts, both stores and the config."""

    config: ScoreConfig
    plan_digest: str
    settings_digest: str
    input_format: str
    rows_mode: bool


def blank_record(job: Job, batch: MiniBatch, attempt: int) -> PartRecord:
    return PartRecord(
        planDigest=job.plan_digest,
        modelDigest=job.config.model_digest,
        settingsDigest=job.settings_digest,
        miniBatch=batch.id,
        format=job.config.output_format,
        items=batch.items,
        succeeded=0,
        failed=0,
        rows=0,
        attempt=attempt,
        sha256="",
    )


def score_mini_batch(
    job: Job,
    batch: MiniBatch,
    attempt: int,
    scorer: ModelScorer | ScriptScorer,
    source: Store,
    sink: Store,
) -> PartRecord:
    """Read, score and commit; raises MiniBatchFailed when the whole mini-batch failed."""
    import pandas as pd

    from mlkube_serving.batch.reader import UnitError, read_files
    from mlkube_serving.batch.rows import numeric_rows, read_rows_attributed
    from mlkube_serving.batch.scoring import MiniBatchFailed, ModelScorer
    from mlkube_serving.errors import InvalidRequest

    failed: list[tuple[Any, str]]
    if job.rows_mode:
        try:
            rows = read_rows_attributed(source, batch, job.input_format)
            frame, failed = rows.frame, list(rows.failed)
            if isinstance(scorer, ModelScorer) and len(frame):
                frame, bad, errors = numeric_rows(frame, scorer.columns(frame))
                failed += list(zip(rows.items(bad), errors, strict=True))
            items = len(frame) + len(failed)
            if len(frame) == 0:  # no line owned (the row estimate was high) or none good
                out = pd.DataFrame()
            elif isinstance(scorer, ModelScorer):
                out = scorer.score_rows(frame)
            else:
                out = scorer.call(frame, len(frame))
        except (UnitError, InvalidRequest) as exc:  # the same input fails the same way
            raise MiniBatchFailed(str(exc), retryable=False) from exc
    else:
        items = len(batch.units)
        with tempfile.TemporaryDirectory(prefix="mlkube-batch-") as scratch:
            found = read_files(
                source, batch, job.input_format, tabular=scorer.tabular, scratch=scratch
            )
            failed = list(found.failed)
            if isinstance(scorer, ModelScorer):
                out, refused = scorer.score_files(found.names, found.frames)
                failed += refused
            elif found.local_paths:
                out = scorer.call(found.local_paths, len(found.local_paths))
            else:
                out = pd.DataFrame()
    record = blank_record(job, batch, attempt)
    record = PartRecord(
        **{
            **record.__dict__,
            "items": items,
            "succeeded": items - len(failed),
            "failed": len(failed),
        }
    )
    if failed:  # the pod's log says what the dead letter holds (kubectl logs is where users look)
        item, error = failed[0]
        log.warning("mini-batch %d: %d of %d items failed; first: %s: %s", batch.id,
                    len(failed), items, json.dumps(item)[:300], error[:500])  # fmt: skip
    return write_part(sink, record, out, failed)


def commit_failure(job: Job, batch: MiniBatch, attempt: int, error: str, sink: Store) -> PartRecord:
    """After the last retry: an empty part whose every item failed, with the error per unit."""
    import pandas as pd

    record = blank_record(job, batch, attempt)
    record = PartRecord(**{**record.__dict__, "failed": batch.items})
    failed = [(unit.to_json() if job.rows_mode else unit.path, error) for unit in batch.units]
    return write_part(sink, record, pd.DataFrame(), failed)


def plan_job(config: ScoreConfig, plan: Plan, plan_digest: str) -> Job:
    size = {"count": plan.mini_batch_size.count, "unit": plan.mini_batch_size.unit}
    return Job(
        config=config,
        plan_digest=plan_digest,
        settings_digest=config.settings_digest(size),
        input_format=plan.input_format,
        rows_mode=plan.mini_batch_size.unit == "rows",
    )
