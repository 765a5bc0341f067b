"""The BatchJob progress display of `mlkube batch invoke --wait` and `run-local`, and the wait
loop, driven with a fake clock and fetch (no cluster, no real time)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from mlkube.cli.batch_progress import (
    JobDisplay,
    WaitTimeout,
    outcome_lines,
    render_counts,
    render_line,
    wait_for_job,
)
from mlkube.cli.errors import CliError


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def status(phase: str, done: int = 0, failed: int = 0, total: int = 10, **extra: Any) -> dict:
    return {
        "phase": phase,
        "progress": 100 * (done + failed) // total,
        "miniBatches": {"total": total, "succeeded": done, "failed": failed, "retried": 0},
        "items": {"total": 1000, "succeeded": done * 100, "failed": failed * 100},
        **extra,
    }


def test_render_counts_shows_bar_mini_batches_and_items() -> None:
    assert render_counts(status("Running", 5, 1), width=10) == (
        "[######----]  60%  mini-batches 6/10 (1 failed)  items 500 ok, 100 failed of 1,000"
    )
    estimated = status("Running", 1, plan={"itemsEstimated": True})
    assert "of ~1,000" in render_counts(estimated)
    # Once merging, the counts are the merge's exact ones.
    assert "of 1,000" in render_counts({**estimated, "phase": "Merging"})


def test_render_line_before_a_plan_exists() -> None:
    assert render_line({}) == "Pending   waiting for the operator"
    assert render_line({"phase": "Planning"}) == "Planning  listing the input"


def test_terminal_redraws_in_place_and_ends_the_line() -> None:
    out = Tty()
    show = JobDisplay("job-1", out)
    for st in (status("Running", 1), status("Running", 1), status("Running", 2),
               status("Succeeded", 10)):  # fmt: skip
        show(st)
    text = out.getvalue()
    assert text.count("\r") == 3  # the repeated status is not redrawn
    assert text.endswith("job-1 Succeeded [########################] 100%  mini-batches 10/10"
                         "  items 1,000 ok, 0 failed of 1,000\n")  # fmt: skip


def test_logs_get_phase_changes_and_one_line_per_interval() -> None:
    now = [0.0]
    out = io.StringIO()
    show = JobDisplay("j", out, interval=10.0, clock=lambda: now[0])
    show(status("Running", 1))  # phase change: written
    now[0] = 3.0
    show(status("Running", 2))  # within the interval: skipped
    now[0] = 11.0
    show(status("Running", 3))  # interval passed: written
    show(status("Failed", 3, 7))  # terminal: always written
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split()[1] for line in lines] == ["Running", "Running", "Failed"]
    assert "mini-batches 3/10" in lines[1] and "(7 failed)" in lines[2]


def test_close_ends_an_unfinished_live_line() -> None:
    out = Tty()
    show = JobDisplay("j", out)
    show(status("Running", 1))
    show.close()
    assert out.getvalue().endswith("\n")


def job(st: dict) -> dict:
    return {"metadata": {"name": "j"}, "status": st}


def test_wait_returns_the_terminal_job() -> None:
    seen: list[dict] = []
    states = iter([job({}), job(status("Running", 3)), job(status("Succeeded", 10))])
    found = wait_for_job(lambda: next(states), seen.append, None, sleep=lambda _: None)
    assert found["status"]["phase"] == "Succeeded"
    assert [s.get("phase") for s in seen] == [None, "Running", "Succeeded"]


def test_wait_times_out_with_a_message() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(WaitTimeout, match=r"j is still Running after 5s; it keeps running"):
        wait_for_job(lambda: job(status("Running", 1)), lambda _: None, 5.0,
                     clock=lambda: now[0], sleep=sleep)  # fmt: skip
    assert now[0] == 5.0


def test_wait_fails_when_the_job_is_deleted() -> None:
    with pytest.raises(CliError, match="deleted while waiting"):
        wait_for_job(lambda: None, lambda _: None, None)


def test_outcome_lines_show_message_and_last_errors() -> None:
    errors = [{"miniBatch": i, "message": f"boom {i}", "attempt": 4} for i in range(7)]
    errors[-1]["item"] = "in/bad.csv"
    lines = outcome_lines(job(status("Failed", 3, 7, message="ErrorThresholdExceeded: 700 > 10",
                                     lastErrors=errors)))  # fmt: skip
    assert lines[0] == "BatchJob j Failed: ErrorThresholdExceeded: 700 > 10"
    assert len(lines) == 6  # the last five errors
    assert lines[-1] == "  mini-batch 6 (attempt 4) item in/bad.csv: boom 6"
