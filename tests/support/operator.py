"""The real operator, in-process, for integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kopf.testing import KopfRunner


@contextlib.contextmanager
def run_operator(namespace: str) -> Iterator[KopfRunner]:
    """The real operator in a thread, watching one namespace (peering off)."""
    args = ["run", "-m", "mlkube.handlers.main", "--standalone", "--namespace", namespace]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output
