"""Contract C1: the `score` step, like every step, ends with its one-line JSON summary on stdout
and in the termination message file ($MLKUBE_TERMINATION_LOG, as the dev pod executor sets
it; /dev/termination-log in a real pod): the index's final progress document, a threshold
breach's reason included, always valid JSON within the kubelet's 4 KiB. And a step stops at
once on SIGTERM (a deleted pod), workers included: in a container it is PID 1, which the kernel
spares any signal it has no handler for (the real node showed pods living the grace period)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.process.batch.conftest import batch, write_inputs


def score(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run `batch score` with the termination log named by env, as the dev executor does."""
    log = tmp_path / "termination-log"
    log.write_text("")
    env = {**os.environ, "MLKUBE_LOG_LEVEL": "WARNING", "MLKUBE_TERMINATION_LOG": str(log)}
    done = subprocess.run(
        [sys.executable, "-m", "mlkube_serving", "batch", "score", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, log.read_text()


def _plan(tmp_path: Path, inputs: Path) -> tuple[str, str]:
    out = f"file://{tmp_path}/out"
    planned = batch("plan", "--input", f"file://{inputs}", "--output", out,
                    "--mini-batch-size", "2")  # fmt: skip
    assert planned.code == 0, planned.stderr
    return out, str(planned.summary()["digest"])


def test_score_writes_its_final_progress_as_the_termination_message(
    tmp_path: Path, model: Any
) -> None:
    write_inputs(tmp_path / "in", "csv", (30, 20, 10))
    out, digest = _plan(tmp_path, tmp_path / "in")
    code, stdout, message = score(tmp_path, "--output", out, "--model", str(model[0]),
                                  "--index", "1", "--indexes", "2")  # fmt: skip
    assert code == 0
    summary: dict[str, Any] = json.loads(message)
    assert message == stdout.strip().splitlines()[-1]  # the same single line
    assert summary["index"] == 1 and summary["done"] is True and summary["planDigest"] == digest
    assert summary["miniBatches"]["succeeded"] == 1  # 2 mini-batches, index 1 owns the second
    assert summary["items"] == {"total": 1, "succeeded": 1, "failed": 0}
    on_disk = json.loads(Path(tmp_path, "out/_mlkube/progress/index-00001.json").read_text())
    assert summary == on_disk


def test_threshold_exit_42_summary_names_the_reason(tmp_path: Path, model: Any) -> None:
    inputs = tmp_path / "in"
    write_inputs(inputs, "parquet", (5,))
    for i in range(3):  # files mode, 2 per mini-batch: 1 bad file in the first, 2 in the second
        (inputs / f"part-9{i}.parquet").write_bytes(b"PAR1 not parquet")
    out, _ = _plan(tmp_path, inputs)
    code, stdout, message = score(tmp_path, "--output", out, "--model", str(model[0]),
                                  "--error-threshold", "1")  # fmt: skip
    assert code == 42
    summary = json.loads(message)
    assert message == stdout.strip().splitlines()[-1]
    assert summary["done"] is True and summary["items"]["failed"] == 3
    assert summary["reason"].startswith("ErrorThresholdExceeded: 3 failed items"), summary
    assert summary["lastErrors"][-1]["miniBatch"] == 1


def test_unusable_plan_summary_is_the_error(tmp_path: Path, model: Any) -> None:
    write_inputs(tmp_path / "in", "csv", (10,))
    out, _ = _plan(tmp_path, tmp_path / "in")
    code, _, message = score(tmp_path, "--output", out, "--model", str(model[0]),
                             "--plan-digest", "sha256:" + "0" * 64)  # fmt: skip
    assert code == 43
    assert json.loads(message)["error"].startswith("PlanError: plan digest")


HANGING = """
    import os, time
    from pathlib import Path

    def init():
        pass

    def run(mini_batch):
        Path(os.environ["AZUREML_MODEL_DIR"], "worker-%d" % os.getpid()).write_text("busy")
        time.sleep(3600)
"""


def test_sigterm_stops_the_step_and_its_busy_workers_at_once(tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", "csv", (5, 6, 7))
    script = tmp_path / "script"
    script.mkdir()
    (script / "score.py").write_text(textwrap.dedent(HANGING))
    out, _ = _plan(tmp_path, tmp_path / "in")
    env = {**os.environ, "MLKUBE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlkube_serving", "batch", "--termination-log", "", "score",
         "--output", out, "--model", str(script), "--entrypoint", "score.py",
         "--concurrency", "2", "--timeout", "3600"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(list(script.glob("worker-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [int(p.name.split("-")[1]) for p in script.glob("worker-*")]
        assert len(workers) == 2, proc.stderr.read().decode() if proc.poll() is not None else ""
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert code == 128 + signal.SIGTERM and took < 3, (code, took)
    for pid in workers:  # killed, not left sleeping in run()
        deadline = time.monotonic() + 2
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"worker {pid} outlived its step"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
