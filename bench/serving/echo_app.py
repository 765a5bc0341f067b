"""The floor for any Python HTTP server here: the router benchmark's upstream app (it only
drains the request body and answers a fixed V2 response) as a uvicorn factory, so it runs
under the same uvicorn, uvloop and httptools settings and worker count as mlkube's server:

    uvicorn --factory echo_app:create_app --app-dir bench/serving --loop uvloop --http httptools

mlkube's server does this plus routing, decoding, the model call, encoding and metrics; the
bench prints mlkube's throughput as a share of this one's (issue 19: at least 0.7).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))

from upstream import make_app  # bench/router/upstream.py


def create_app() -> Callable[..., Awaitable[None]]:
    app: Callable[..., Awaitable[None]] = make_app("rf")
    return app
