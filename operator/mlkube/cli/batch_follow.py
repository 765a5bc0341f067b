"""`--wait [SECONDS]` of `batch invoke` and `batch jobs resume`: follow a BatchJob to its end.

Exit codes: 0 Succeeded, 1 Failed or Cancelled (the message and last errors on stderr), 124
still running after SECONDS (the job keeps running; the message says how to follow it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

from mlkube.cli import batch_view as view
from mlkube.cli.batch_api import find_endpoint, get_job
from mlkube.cli.batch_progress import JobDisplay, WaitTimeout, outcome_lines, wait_for_job
from mlkube.cli.errors import CliError
from mlkube.k8s import Kube

EXIT_FAILED: Final = 1
EXIT_TIMEOUT: Final = 124
_FOREVER: Final = -1.0


def add_wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", nargs="?", type=float, const=_FOREVER, default=None, metavar="SECONDS",
        help="follow the job's progress until it ends (at most SECONDS when given)",
    )  # fmt: skip


def wait_timeout(args: argparse.Namespace) -> float | None:
    """None: wait without limit (also when not waiting at all: see `args.wait is None`)."""
    if args.wait is None or args.wait == _FOREVER:
        return None
    if args.wait <= 0:
        raise CliError("--wait SECONDS must be positive")
    return float(args.wait)


def follow(kube: Kube, namespace: str, name: str, timeout: float | None) -> int:
    """Show the job's progress until it ends: 0 Succeeded, 1 Failed/Cancelled, 124 timeout."""
    display = JobDisplay(name)
    try:
        job = wait_for_job(lambda: get_job(kube, namespace, name), display, timeout)
    except WaitTimeout as exc:
        display.close()
        print(str(exc), file=sys.stderr)
        return EXIT_TIMEOUT
    except BaseException:
        display.close()
        raise
    status = job.get("status") or {}
    lines = outcome_lines(job)
    if status.get("phase") == "Succeeded":
        endpoint = find_endpoint(kube, namespace, str(job["spec"]["endpoint"]))
        deployment = view.find_deployment(endpoint, status.get("deployment"))
        predictions = view.predictions_uri(job, deployment)
        lines.append(f"  output:      {view.output_uri(job) or '-'}")
        if predictions:
            lines.append(f"  predictions: {predictions}")
        print("\n".join(lines))
        return 0
    dead = view.dead_letter_uri(job)
    if dead and (status.get("items") or {}).get("failed"):
        lines.append(f"  failed items are listed under {dead}")
    print("\n".join(lines), file=sys.stderr)
    return EXIT_FAILED
