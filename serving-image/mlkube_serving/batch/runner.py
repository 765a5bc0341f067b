"""One index of the scoring Job: its shard of the plan over `concurrency` worker processes.

The parent process never scores: it hands mini-batches to idle workers, enforces the
per-mini-batch timeout by killing the worker (and starting a fresh one), retries a failed
mini-batch up to `max_retries` times inside the pod, commits a failure part after the last
attempt, rewrites the index's progress file after every mini-batch, and stops with exit 42
as soon as its own failed items exceed the error threshold. Verified parts of an earlier
attempt of this index (or of a resumed job) are accounted and skipped, never recomputed.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from mlkube.builders.batch_plan import MiniBatch, PlanError, parse_plan, plan_digest, shard
from mlkube.builders.batch_resume import parse_work
from mlkube_serving.batch.accounting import Tally
from mlkube_serving.batch.config import EXIT_BAD_INPUT, EXIT_THRESHOLD, ScoreConfig
from mlkube_serving.batch.execute import Job, commit_failure, plan_job
from mlkube_serving.batch.output import META, verified_record, write_progress
from mlkube_serving.batch.prepared import prepare
from mlkube_serving.batch.store import Store
from mlkube_serving.batch.worker import worker_main

log = logging.getLogger(__name__)
PLAN = f"{META}/plan.json"


@dataclass
class Slot:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    started: float = 0.0  # when the job was sent (0: prestarted, not yet told)
    task: tuple[MiniBatch, int, float] | None = None  # (batch, attempt, deadline)


class Runner:
    def __init__(self, config: ScoreConfig, sink: Store):
        self.config, self.sink = config, sink
        self.context = multiprocessing.get_context("spawn")
        self.slots: list[Slot] = []
        self.pending: collections.deque[tuple[MiniBatch, int]] = collections.deque()
        self.init: tuple[Any, ...] | None = None  # ("init", job, input_uri, prepared)
        self.last: dict[str, Any] = {}  # the progress document written last: the step's summary

    def prestart(self) -> None:
        """Spawn the workers first thing: they import their libraries while this process
        reads the plan and converts the model; they get the job once it is known."""
        self.slots = [self.start() for _ in range(max(1, self.config.concurrency))]

    def attach(self, job: Job, input_uri: str, tally: Tally, prepared: str = "") -> None:
        self.job, self.tally = job, tally
        self.init = ("init", job, input_uri, prepared)

    def start(self) -> Slot:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=worker_main, args=(child,), daemon=True)
        process.start()
        child.close()
        slot = Slot(process, parent)
        if self.init is not None:
            self.send_init(slot)
        return slot

    def send_init(self, slot: Slot) -> None:
        slot.conn.send(self.init)
        slot.started = time.monotonic()  # the init timeout counts from here

    def close(self) -> None:
        for slot in self.slots:
            self.stop(slot)
        self.slots = []

    def stop(self, slot: Slot, kill: bool = False) -> None:
        if kill:
            slot.process.kill()
        else:
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        slot.process.join(5)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(5)
        slot.conn.close()

    def replace(self, slot: Slot) -> None:
        self.stop(slot, kill=True)
        self.slots[self.slots.index(slot)] = self.start()

    def fail(self, batch: MiniBatch, attempt: int, message: str, retryable: bool = True) -> None:
        """Retry inside the pod, or commit the failure once retries are used up."""
        self.tally.error(batch.id, message, attempt)
        if retryable and attempt <= self.config.max_retries:  # attempts count from 1
            self.tally.retried += 1
            self.pending.appendleft((batch, attempt + 1))
            return
        record = commit_failure(self.job, batch, attempt, message, self.sink)
        self.tally.add(record.__dict__)
        self.report()

    def report(self, reason: str = "", done: bool = False) -> None:
        self.last = self.tally.progress(done=done, reason=reason)
        write_progress(self.sink, self.config.index, self.last)

    def run(self, batches: list[MiniBatch]) -> int:
        self.pending.extend((b, 1) for b in batches)
        workers = max(1, min(self.config.concurrency, len(batches))) if batches else 0
        while len(self.slots) > workers:  # more prestarted workers than mini-batches
            self.stop(self.slots.pop())
        while len(self.slots) < workers:
            self.slots.append(self.start())
        for slot in self.slots:
            if slot.started == 0.0:
                self.send_init(slot)
        try:
            return self._loop()
        except BaseException:  # SIGTERM (the pod is deleted), or a bug: end the workers now
            for slot in self.slots:
                self.stop(slot, kill=True)
            self.slots = []
            raise
        finally:
            self.close()

    def _loop(self) -> int:
        while self.pending or any(s.task for s in self.slots):
            for slot in self.slots:
                if slot.ready and slot.task is None and self.pending:
                    batch, attempt = self.pending.popleft()
                    deadline = time.monotonic() + self.config.timeout_seconds
                    slot.task = (batch, attempt, deadline)
                    slot.conn.send((batch, attempt))
            deadlines = [s.task[2] for s in self.slots if s.task]
            limit = self.config.init_timeout_seconds  # a hanging init() must not hang the pod
            deadlines += [s.started + limit for s in self.slots if not s.ready]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 1.0
            for conn in wait([s.conn for s in self.slots], timeout=wait_for):
                slot = next(s for s in self.slots if s.conn is conn)
                code = self._receive(slot)
                if code is not None:
                    return code
            for slot in self.slots:
                if not slot.ready and time.monotonic() >= slot.started + limit:
                    reason = f"cannot start a scorer: not ready after {limit:g} s"
                    self.report(reason, done=True)
                    log.error(reason)
                    return EXIT_BAD_INPUT
            for slot in list(self.slots):
                if slot.task and time.monotonic() >= slot.task[2]:
                    batch, attempt, _ = slot.task
                    self.replace(slot)
                    timeout = self.config.timeout_seconds
                    self.fail(batch, attempt, f"timed out after {timeout:g} s (worker killed)")
            if self.tally.threshold_exceeded(self.config.error_threshold):
                reason = (
                    f"ErrorThresholdExceeded: {self.tally.items_failed} failed items exceed "
                    f"errorThreshold {self.config.error_threshold}"
                )
                self.report(reason, done=True)
                log.error(reason)
                return EXIT_THRESHOLD
        self.report(done=True)
        return 0

    def _receive(self, slot: Slot) -> int | None:
        try:
            message: tuple[Any, ...] = slot.conn.recv()
        except (EOFError, OSError):
            slot.process.join(5)  # the pipe closes a moment before the exit code is reaped
            code = slot.process.exitcode
            task = slot.task
            self.replace(slot)
            if task is None:
                return None
            self.fail(task[0], task[1], f"worker process exited (code {code})")
            return None
        kind = message[0]
        if kind == "ready":
            slot.ready = True
        elif kind == "fatal":
            self.report(f"cannot start a scorer: {message[1]}", done=True)
            log.error("cannot start a scorer: %s", message[1])
            return EXIT_BAD_INPUT
        elif slot.task is not None:
            batch, attempt, _ = slot.task
            slot.task = None
            if kind == "done":
                self.tally.add(message[2])
                for_errors = message[2]
                if for_errors["failed"]:
                    first = f"; first: {message[3]}" if len(message) > 3 and message[3] else ""
                    text = f"{for_errors['failed']} items failed (see the dead-letter file){first}"
                    self.tally.error(batch.id, text, attempt)
                self.report()
            else:
                self.fail(batch, attempt, str(message[2]), bool(message[3]))
        return None


def run_index(config: ScoreConfig, work_name: str | None = None) -> tuple[int, dict[str, Any]]:
    """Score this index's shard: (exit code, summary). The code is 0, EXIT_THRESHOLD (42) or
    EXIT_BAD_INPUT (43); the summary is the index's last progress document (contract C1:
    the step's one-line JSON summary), or the error when the plan could not be used."""
    sink = Store.open(config.output_uri)
    runner = Runner(config, sink)
    runner.prestart()
    try:
        return _run_index(config, work_name, sink, runner)
    finally:
        runner.close()


def _run_index(
    config: ScoreConfig, work_name: str | None, sink: Store, runner: Runner
) -> tuple[int, dict[str, Any]]:
    try:
        data = sink.read_bytes(PLAN)
        digest = plan_digest(data)
        if config.plan_digest and digest != config.plan_digest:
            raise PlanError(f"plan digest {digest} is not the expected {config.plan_digest}")
        plan = parse_plan(data)
        if work_name:
            work = parse_work(sink.read_bytes(work_name))
            if work.plan_digest != digest:
                raise PlanError(f"work list {work_name} belongs to plan {work.plan_digest}")
            ids = work.for_index(config.index, config.indexes)
        else:
            ids = tuple(shard(config.index, len(plan.mini_batches), config.indexes))
    except PlanError as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT, {"error": f"PlanError: {exc}"[:2048], "index": config.index}
    job = plan_job(config, plan, digest)
    tally = Tally(config.index, config.indexes, digest, len(ids))
    todo = []
    for mb_id in ids:
        record = verified_record(sink, mb_id, config.output_format)
        if (
            record is not None
            and record.failed == 0
            and (record.planDigest, record.modelDigest, record.settingsDigest)
            == (digest, config.model_digest, job.settings_digest)
        ):
            tally.add(record.__dict__, reused=True)
        else:
            todo.append(plan.mini_batches[mb_id])
    with tempfile.TemporaryDirectory(prefix="mlkube-batch-model-") as scratch:
        prepared = ""
        if todo:
            prepared = prepare(config.model_path, config.framework, config.entrypoint, scratch)
        runner.attach(job, plan.input_uri, tally, prepared)
        runner.report()
        return runner.run(todo), runner.last
