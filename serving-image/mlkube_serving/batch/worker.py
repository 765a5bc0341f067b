"""A scorer worker process: load the model (or run `init()`) once, then score mini-batches.

Workers are separate processes (spawned, not forked: no inherited onnxruntime threads or
locks) so that `maxConcurrencyPerInstance` uses that many cores and a hanging `run()` can be
ended by killing its process, the only reliable way to stop arbitrary user code. The parent
sends `(MiniBatch, attempt)`; the worker commits the part itself (results never cross the
pipe) and answers with the record, or with the error that failed the mini-batch. Workers
are spawned before the parent has read the plan; the job comes as the first message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict
from multiprocessing.connection import Connection

from mlkube_serving.batch.execute import Job, score_mini_batch
from mlkube_serving.batch.output import PartRecord, deadletter_name
from mlkube_serving.batch.store import Store

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Import what every mini-batch needs while the parent reads the plan and converts the
    model: these imports overlap the parent's work instead of following it."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401

    with contextlib.suppress(ImportError):  # an image variant without it (mlkube-sklearn)
        import onnxruntime  # noqa: F401


def worker_main(conn: Connection) -> None:
    """Protocol: <- ("init", job, input_uri, prepared) -> ("ready",) | ("fatal", msg); then
    per request -> ("done", id, record) or ("failed", id, msg, retryable); a None request or
    a closed pipe ends the worker at once (its parts are committed: nothing to flush)."""
    warm_up()
    try:
        init = conn.recv()
    except EOFError:
        os._exit(0)
    if init is None:
        os._exit(0)
    _, job, input_uri, prepared = init
    from mlkube_serving.batch.listing import input_store
    from mlkube_serving.batch.scoring import create_scorer  # not in the parent: it never scores

    try:
        config = job.config
        scorer = create_scorer(
            config.model_path,
            config.framework,
            config.entrypoint,
            config.init_function,
            config.run_function,
            prepared,
        )
        if hasattr(scorer, "chunk_rows"):
            scorer.chunk_rows = config.chunk_rows
        source = input_store(input_uri)
        sink = Store.open(config.output_uri)
    except Exception as exc:  # model, script or store unusable: nothing can succeed
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            os._exit(0)
        if request is None:
            os._exit(0)
        batch, attempt = request
        try:
            record = score_mini_batch(job, batch, attempt, scorer, source, sink)
        except Exception as exc:
            log.warning("mini-batch %d attempt %d failed: %s", batch.id, attempt, exc)
            retryable = getattr(exc, "retryable", True)
            conn.send(("failed", batch.id, f"{type(exc).__name__}: {exc}", retryable))
        else:
            conn.send(("done", batch.id, asdict(record), first_failure(job, sink, record)))


def first_failure(job: Job, sink: Store, record: PartRecord) -> str:
    """The first dead-letter line of a part with failed items, for the progress file's
    lastErrors (the full list stays in the dead-letter file)."""
    if not record.failed:
        return ""
    try:
        first = sink.read_bytes(deadletter_name(record.miniBatch)).split(b"\n", 1)[0]
        body = json.loads(first)
        return f"{json.dumps(body['item'])[:300]}: {str(body['error'])[:500]}"
    except Exception:  # the counts are what matter; a missing message is not an error
        return ""
