"""`--wait [SECONDS]` of `env create` and `model package`: follow an Environment until it is
Ready or Failed, printing each phase once, then the image (or why it failed).

Exit codes as `batch invoke --wait`: 0 Ready, 1 Failed (the reason and how to read the build
logs on stderr), 124 still building after SECONDS (the build keeps going).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from mlkube.cli.batch_follow import EXIT_FAILED, EXIT_TIMEOUT
from mlkube.cli.env_object import KIND, reference
from mlkube.cli.env_view import ready_message
from mlkube.cli.errors import CliError
from mlkube.cli.progress import format_bytes
from mlkube.cli.waiting import WaitTimeout, wait_until_finished
from mlkube.contract import API_VERSION
from mlkube.k8s import Kube

FINISHED: Final = ("Ready", "Failed")
_FOREVER: Final = -1.0  # as batch_follow.wait_timeout reads it


def add_wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", nargs="?", type=float, const=_FOREVER, default=None, metavar="SECONDS",
        help="wait until the environment is Ready or Failed (at most SECONDS when given)",
    )  # fmt: skip


def phase_line(status: Mapping[str, Any]) -> str:
    phase = status.get("phase") or "Pending"
    job = (status.get("build") or {}).get("job")
    return phase + (f" (build Job {job})" if phase == "Building" and job else "")


def ready_lines(obj: Mapping[str, Any]) -> list[str]:
    status = obj.get("status") or {}
    build = status.get("build") or {}
    lines = [f"{reference(obj)} is Ready", f"  image:    {status.get('image') or '-'}"]
    if status.get("sizeBytes") is not None:
        lines.append(f"  size:     {format_bytes(int(status['sizeBytes']))}")
    if status.get("python"):
        lines.append(f"  python:   {status['python']}")
    lines.append(f"  packages: {len(status.get('packages') or [])}")
    if build.get("reused"):
        lines.append("  build:    reused an identical build (same build key), no new image")
    elif build.get("durationSeconds") is not None:
        lines.append(f"  build:    {build['durationSeconds']:g}s")
    return lines


def failed_lines(obj: Mapping[str, Any]) -> list[str]:
    ref = reference(obj)
    why = ready_message(obj.get("status") or {}) or "no reason given"
    return [f"{ref} Failed: {why}", f"  build logs: mlkube env build-logs {ref}"]


def wait(
    fetch: Callable[[], Mapping[str, Any] | None],
    timeout: float | None,
    out: Callable[[str], None],
    **loop: Any,
) -> tuple[int, Mapping[str, Any] | None]:
    """(exit code, last object): prints each new phase, then the outcome."""
    seen: list[str] = []

    def show(status: Mapping[str, Any]) -> None:
        line = phase_line(status)
        if not seen or seen[-1] != line:
            seen.append(line)
            out(f"  {line}")

    try:
        obj = wait_until_finished(
            fetch, show, timeout, kind=KIND, finished=FINISHED,
            hint=lambda name: f"follow it with `mlkube env build-logs {name} --follow`",
            **loop,
        )  # fmt: skip
    except WaitTimeout as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_TIMEOUT, None
    if (obj.get("status") or {}).get("phase") == "Ready":
        for line in ready_lines(obj):
            out(line)
        return 0, obj
    print("\n".join(failed_lines(obj)), file=sys.stderr)
    return EXIT_FAILED, obj


def wait_and_report(kube: Kube, obj: Mapping[str, Any], timeout: float | None) -> int:
    meta = obj["metadata"]
    code, _ = wait(lambda: kube.get(API_VERSION, KIND, meta["name"], meta["namespace"]),
                   timeout, lambda line: print(line, flush=True))  # fmt: skip
    return code


def wait_for_build_job(
    kube: Kube,
    obj: Mapping[str, Any],
    timeout: float = 300.0,
    *,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any]:
    """For `build-logs --follow` right after `create`: the object once its status names a
    build Job, it has finished without one (reused, failed early), or `timeout` passed."""
    meta, deadline = obj["metadata"], clock() + timeout
    while True:
        current = kube.get(API_VERSION, KIND, meta["name"], meta["namespace"])
        if current is None:
            raise CliError(f"the {KIND} was deleted while waiting for its build")
        status = current.get("status") or {}
        if ((status.get("build") or {}).get("job") or status.get("phase") in FINISHED
                or clock() >= deadline):  # fmt: skip
            return current
        sleep(poll)
