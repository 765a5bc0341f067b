"""One API client per operator process, created on first use (after Kopf's login)."""

from __future__ import annotations

import functools
import os

from mlkube.handlers.settings import max_workers
from mlkube.k8s import Kube

# Calls from outside Kopf's handler pool share the client: asyncio.to_thread's default
# executor (periodic loops, Deployment reactions) runs min(32, cpus + 4) threads, and the
# coalesced passes of handlers/endpoint.py their own (refreshes 4, reconciles 8, traffic
# statuses 2); the endpoints' create and update passes and their resume passes run in
# max_workers() threads each, besides Kopf's max_workers() (handlers/endpoint.py).
COALESCED_THREADS = 14
EXTRA_CONNECTIONS = min(32, (os.cpu_count() or 1) + 4) + COALESCED_THREADS


@functools.cache
def kube() -> Kube:
    # One kept-alive connection per thread calling at once; urllib3 would otherwise open and
    # drop a connection (TLS handshake included) for every call beyond its pool.
    return Kube.light(pool_size=3 * max_workers() + EXTRA_CONNECTIONS)
