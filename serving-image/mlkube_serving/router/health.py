"""Which upstream deployments answer: active probes plus what live requests observe.

`/readyz` is true when a config is loaded and at least one deployment is up. Each deployment
is probed with `GET <healthPath>` every `healthIntervalSeconds` (and right after a reload);
live traffic also marks a deployment up or down as it succeeds or fails to connect, so the
state follows reality between probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from mlkube_serving._http.client import serialize_request
from mlkube_serving.router.errors import UpstreamError
from mlkube_serving.router.metrics import RouterMetrics
from mlkube_serving.router.table import Route, RoutingTable

log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 2.0
_PROBE_HEADERS = b"user-agent: mlkube-router\r\n"


class UpstreamHealth:
    """Up/down state per deployment name, mirrored into the `upstream_up` gauge."""

    def __init__(self, metrics: RouterMetrics) -> None:
        self._metrics = metrics
        self._up: dict[str, bool] = {}
        self._poke = asyncio.Event()

    def is_up(self, name: str) -> bool:
        return self._up.get(name, False)

    def mark(self, name: str, up: bool) -> None:
        if self._up.get(name) is not up:
            if name in self._up:
                log.info("deployment %s is now %s", name, "up" if up else "down")
            self._up[name] = up
            self._metrics.upstream_up.labels(name).set(1.0 if up else 0.0)

    def forget_others(self, table: RoutingTable) -> None:
        """Drop the state of deployments a reload removed, so no stale gauge lingers."""
        for name in [name for name in self._up if name not in table.routes]:
            del self._up[name]
            with contextlib.suppress(KeyError):
                self._metrics.upstream_up.remove(name)

    def snapshot(self, table: RoutingTable) -> dict[str, bool]:
        return {name: self.is_up(name) for name in table.routes}

    def any_up(self, table: RoutingTable) -> bool:
        return any(self.is_up(name) for name in table.routes)

    def poke(self) -> None:
        """Probe again now (after a reload changed the set of deployments)."""
        self._poke.set()

    async def probe_route(self, route: Route) -> bool:
        path = route.health_path.encode()
        data = serialize_request(b"GET", path, route.host_line, _PROBE_HEADERS, b"")
        deadline = asyncio.get_running_loop().time() + PROBE_TIMEOUT_SECONDS
        try:
            response = await route.pool.request(data, deadline)
        except UpstreamError:
            return False
        return 200 <= response.status < 300

    async def probe_all(self, table: RoutingTable) -> None:
        routes = list(table.routes.values())
        results = await asyncio.gather(*(self.probe_route(route) for route in routes))
        for route, up in zip(routes, results, strict=True):
            self.mark(route.name, up)

    async def run(self, current: Callable[[], RoutingTable | None]) -> None:
        """Probe forever (cancel to stop) at the current table's interval."""
        while True:
            table = current()
            interval = 1.0
            if table is not None:
                interval = table.config.health_interval_seconds
                await self.probe_all(table)
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=interval)
