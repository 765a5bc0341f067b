"""Waiting for an object to finish (`batch invoke --wait`, `pipeline run --wait`), one loop.

The BatchJob and PipelineRun verbs poll the same way: fetch, show, stop at a finished phase or
give up after `--wait SECONDS` while the object keeps running. The clock, sleep and fetch are
arguments, so tests drive the loop without a cluster or real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from mlkube.cli.errors import CliError


class WaitTimeout(CliError):
    """The object did not finish within --wait SECONDS (it keeps running)."""


def wait_until_finished(
    fetch: Callable[[], Mapping[str, Any] | None],
    show: Callable[[Mapping[str, Any]], None],
    timeout: float | None,
    *,
    kind: str,
    finished: Collection[str],
    hint: Callable[[str], str],
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any]:
    """Poll until the status phase is in `finished`; return the object. WaitTimeout after
    `timeout` seconds, its message ending with `hint(name)` (how to follow or stop it)."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        obj = fetch()
        if obj is None:
            raise CliError(f"the {kind} was deleted while waiting for it")
        status = obj.get("status") or {}
        show(status)
        if status.get("phase") in finished:
            return obj
        if deadline is not None and clock() >= deadline:
            name = obj["metadata"]["name"]
            raise WaitTimeout(
                f"{kind} {name} is still {status.get('phase') or 'Pending'} after "
                f"{timeout:g}s; it keeps running ({hint(name)})"
            )
        sleep(poll)
