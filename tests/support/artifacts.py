"""An HTTP artifact server on the real node's bridge address (e2e tests): reachable from this
machine and from pods, not from the network."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

from mlkube.devcluster.realnode_config import BRIDGE_ADDRESS


@contextlib.contextmanager
def artifact_server(directory: Path) -> Iterator[str]:
    """Serve `directory` on the bridge address: reachable from pods, not from the network."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((BRIDGE_ADDRESS, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{BRIDGE_ADDRESS}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
