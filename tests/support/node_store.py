"""The real node's S3 store as this process's environment (mlkube.storage reads the endpoint
and credentials from os.environ), for e2e code that publishes into or reads from it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def store_env(env: dict[str, str]) -> Iterator[None]:
    """`env` (the node's S3 endpoint and credentials) in os.environ, restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
