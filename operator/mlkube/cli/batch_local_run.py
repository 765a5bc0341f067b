"""Run a resolved BatchRun here: the plan step, the score step once per index (at most
`workers` at a time, a failed index rerun like `backoffLimitPerIndex` would), then the merge.

Progress is what the operator would see: the scorer's progress files in the output, summed
by the same pure `sum_progress`, shown as a BatchJob status. Every step is its own process
(the CLI never imports the data plane); each logs to `<work-dir>/logs/<step>.log`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mlkube.api.batch_job import PlanSummary
from mlkube.builders.batch_plan import index_count
from mlkube.cli.batch_files import list_small
from mlkube.cli.errors import CliError
from mlkube.devcluster.procs import tail
from mlkube.localrun.batch import BatchRun, merge_argv, plan_argv, score_argv
from mlkube.reconcile.batch_progress import Progress, parse_progress, sum_progress

EXIT_THRESHOLD: Final = 42  # the scorer's exit codes (docs/batch-endpoints.md §10)
EXIT_BAD_INPUT: Final = 43
POLL_SECONDS: Final = 0.5


@dataclass
class Outcome:
    phase: str
    message: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    merge: dict[str, Any] = field(default_factory=dict)


def _summary(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            found = json.loads(line)
            if isinstance(found, dict):
                return found
    return {}


class LocalBatch:
    def __init__(self, run: BatchRun, model_dir: str, workdir: Path, workers: int,
                 display: Callable[[Mapping[str, Any]], None]) -> None:  # fmt: skip
        self.run = run
        self.model_dir = model_dir
        self.logs = workdir / "logs"
        self.workers = max(1, workers)
        self.display = display
        self.env = {**os.environ, **run.env}
        self.plan: PlanSummary | None = None

    def _step(self, name: str, argv: list[str]) -> tuple[int, dict[str, Any]]:
        """Run a short step to its end; (exit code, its JSON summary)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, check=False)
        (self.logs / f"{name}.log").write_text(done.stdout + done.stderr)
        return done.returncode, _summary(done.stdout)

    def execute(self) -> Outcome:
        self.display({"phase": "Planning"})
        code, planned = self._step("plan", plan_argv(self.run))
        if code != 0:
            why = planned.get("error") or tail(self.logs / "plan.log", 5)
            return Outcome("Failed", f"plan step failed (exit {code}): {why}")
        total = int(planned["miniBatches"])
        if total == 0:
            return Outcome("Failed", f"InputEmpty: no data files under {self.run.input_uri}")
        indexes = index_count(total, self.run.instance_count)
        self.plan = PlanSummary(
            digest=planned["digest"], uri=f"{self.run.output_uri}/_mlkube/plan.json",
            mini_batches=total, items=int(planned["items"]),
            items_estimated=bool(planned.get("itemsEstimated")), indexes=indexes,
        )  # fmt: skip
        failed = self._score(indexes)
        status = self.status("Running")
        if failed:
            return Outcome("Failed", failed, status)
        self.display({**status, "phase": "Merging"})
        code, merged = self._step("merge", merge_argv(self.run))
        if code != 0:
            why = merged.get("error") or tail(self.logs / "merge.log", 5)
            return Outcome("Failed", f"merge step failed (exit {code}): {why}", status)
        items = merged.get("items") or status["items"]
        return Outcome("Succeeded", "", {**status, "items": items, "progress": 100}, merged)

    def _score(self, indexes: int) -> str:
        """Run every index; '' when all ended well, else why the job failed."""
        pending = list(range(indexes))
        attempts = dict.fromkeys(pending, 0)
        running: dict[int, subprocess.Popen[bytes]] = {}
        assert self.plan is not None
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    index = pending.pop(0)
                    attempts[index] += 1
                    running[index] = self._spawn(index, indexes)
                time.sleep(POLL_SECONDS)
                for index, proc in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del running[index]
                    if code == EXIT_THRESHOLD:
                        return f"ErrorThresholdExceeded: index {index} passed errorThreshold " \
                               f"{self.run.error_threshold}"  # fmt: skip
                    if code == EXIT_BAD_INPUT:
                        return f"index {index} failed (exit 43, not retried): " + tail(
                            self.logs / f"score-{index}.log", 5
                        )
                    if code != 0:
                        if attempts[index] > self.run.max_retries:
                            return f"index {index} failed {attempts[index]} times (exit {code})"
                        pending.append(index)  # a rerun skips the parts already verified
                progress = self.progress()
                self.display(self.status("Running", progress))
                threshold = self.run.error_threshold
                if threshold >= 0 and progress.items.failed > threshold:
                    return f"ErrorThresholdExceeded: {progress.items.failed} failed items " \
                           f"(errorThreshold {threshold})"  # fmt: skip
        finally:
            for proc in running.values():
                _stop(proc)
        return ""

    def _spawn(self, index: int, indexes: int) -> subprocess.Popen[bytes]:
        assert self.plan is not None
        argv = score_argv(self.run, self.model_dir, index, indexes, self.plan.digest)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"score-{index}.log", "ab") as log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**self.env, "JOB_COMPLETION_INDEX": str(index)}, start_new_session=True,
            )  # fmt: skip

    def progress(self) -> Progress:
        assert self.plan is not None
        files = list_small(self.run.output_uri, "_mlkube/progress")
        docs = [d for f in files if (d := parse_progress(f, self.plan.digest)) is not None]
        return sum_progress(self.plan, docs)

    def status(self, phase: str, progress: Progress | None = None) -> dict[str, Any]:
        """The BatchJob status the operator would write for this progress."""
        assert self.plan is not None
        seen = progress or self.progress()
        return {
            "phase": phase,
            "plan": self.plan.model_dump(by_alias=True),
            "miniBatches": seen.mini_batches.model_dump(by_alias=True),
            "items": seen.items.model_dump(by_alias=True),
            "progress": seen.percent,
            "lastErrors": [
                e.model_dump(by_alias=True, exclude_none=True) for e in seen.last_errors
            ],
        }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the step's process group (its workers too), SIGKILL after 10 s."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise CliError("--workers must be at least 1")
