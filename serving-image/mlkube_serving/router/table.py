"""The immutable routing table built from one config: weights, mirrors, upstream pools.

A reload builds a new table and swaps one reference; a request reads that reference once at
its start, so it finishes on the table it began with and never sees half of an update.
Weighted choice is a bisect over precomputed cumulative percents, so it costs the same for two
deployments or twenty and takes the random number from outside (tests inject it).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from mlkube_serving._http.client import PoolRegistry, UpstreamPool
from mlkube_serving.router.config import RouterConfig


@dataclass(frozen=True, slots=True)
class Route:
    """One deployment as the hot path needs it: name, pool and the pre-encoded host header."""

    name: str
    name_bytes: bytes
    pool: UpstreamPool
    host_line: bytes
    health_path: str
    grpc_target: str | None = None  # host:port of the deployment's gRPC server


class RoutingTable:
    """Everything a request needs to pick its upstream, precomputed once per config."""

    def __init__(self, config: RouterConfig, pools: PoolRegistry) -> None:
        self.config = config
        self.routes: dict[str, Route] = {}
        for name, dep in config.deployments.items():
            hostport = dep.host if dep.port == 80 else f"{dep.host}:{dep.port}"
            self.routes[name] = Route(
                name=name,
                name_bytes=name.encode("ascii"),
                pool=pools.get(
                    dep.host,
                    dep.port,
                    config.max_connections_per_upstream,
                    config.max_response_bytes,
                ),
                host_line=b"host: " + hostport.encode("idna") + b"\r\n",
                health_path=dep.health_path,
                grpc_target=f"{dep.host}:{dep.grpc_port}" if dep.grpc_port else None,
            )
        self._live, self._cumulative = build_cumulative(config.traffic)
        self._live_routes = [self.routes[name] for name in self._live]
        self.mirrors: tuple[tuple[Route, float], ...] = tuple(
            (self.routes[name], pct / 100.0) for name, pct in sorted(config.mirror.items())
        )
        self.valid_names = ", ".join(sorted(self.routes))
        self.timeout = config.timeout_seconds
        self.auth_required = config.auth.mode == "key"

    def pools(self) -> list[UpstreamPool]:
        return [route.pool for route in self.routes.values()]

    def choose(self, rand: float) -> Route | None:
        """Pick the live deployment for `rand` in [0, 1); None when no deployment has traffic."""
        routes = self._live_routes
        if not routes:
            return None
        index = bisect.bisect_right(self._cumulative, rand * 100.0)
        return routes[index] if index < len(routes) else routes[-1]

    def choose_excluding(self, rand: float, excluded: Collection[str]) -> Route | None:
        """Weighted choice among live deployments not in `excluded` (the failover path)."""
        weights = {
            name: pct
            for name, pct in self.config.traffic.items()
            if pct > 0 and name not in excluded
        }
        names, cumulative = build_cumulative(weights)
        if not names:
            return None
        total = cumulative[-1]
        index = bisect.bisect_right(cumulative, rand * total)
        return self.routes[names[min(index, len(names) - 1)]]

    def pick_mirrors(self, live: str, rand: Callable[[], float]) -> list[Route]:
        """Mirror targets for one live request: each with its own percent, never the live one."""
        picked: list[Route] = []
        for route, fraction in self.mirrors:
            if route.name != live and rand() < fraction:
                picked.append(route)
        return picked


def build_cumulative(weights: Mapping[str, float]) -> tuple[list[str], list[float]]:
    """Names with a positive weight and their running totals, in a stable (sorted) order."""
    names: list[str] = []
    cumulative: list[float] = []
    running = 0.0
    for name in sorted(weights):
        weight = weights[name]
        if weight > 0:
            running += weight
            names.append(name)
            cumulative.append(running)
    return names, cumulative
