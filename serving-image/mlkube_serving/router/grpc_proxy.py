"""The router's gRPC side: unary calls (the Open Inference Protocol's, or any other) proxied
to the deployments' gRPC ports with the same routing as HTTP.

One routing table serves both: the live split, the `x-mlkube-deployment` header (as gRPC
metadata) targeting one deployment, copies to mirror deployments, key auth (`authorization:
Bearer <key>` or `api-key` metadata, never forwarded). Calls are forwarded as bytes, never
decoded, so any unary method works. The answer carries the deployment that served it as
`x-mlkube-deployment` initial metadata, like the HTTP header; errors keep the upstream's status
code and details. Mirror copies are fire-and-forget, bounded by the config's mirror
concurrency, and count in the router's metrics with kind "mirror" (no agreement check: the
answers are opaque bytes here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import grpc

from mlkube.contract import HEADER_DEPLOYMENT
from mlkube_serving.router.asgi import MAX_BODY_BYTES
from mlkube_serving.router.errors import RouterError
from mlkube_serving.router.table import Route, RoutingTable

if TYPE_CHECKING:
    from mlkube_serving.router.app import RouterApp

log = logging.getLogger("mlkube_serving.router.grpc")

DROPPED: Final = frozenset({"authorization", "api-key"})
CHANNELS_PER_UPSTREAM: Final = 4
STATUS_OF: Final = {  # gRPC code -> the HTTP status the router's metrics count
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


class GrpcProxy(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every unary method, routed by the router's current table."""

    def __init__(self, router: RouterApp, rand: Callable[[], float]) -> None:
        self.router = router
        self._rand = rand
        # CHANNELS_PER_UPSTREAM channels (HTTP/2 connections) per upstream, used in turn: a
        # ClusterIP Service balances connections, not calls, so one connection would send
        # every call of this worker to one pod. Kept across config reloads.
        self._channels: dict[str, list[grpc.aio.Channel]] = {}
        self._turn = 0
        self._mirrors: set[asyncio.Task[None]] = set()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method  # type: ignore[attr-defined]

        async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._call(method, request, context)

        return grpc.unary_unary_rpc_method_handler(call)

    def _channel(self, target: str) -> grpc.aio.Channel:
        channels = self._channels.get(target)
        if channels is None:
            # A distinct option per channel keeps gRPC from sharing one subchannel among them.
            channels = self._channels[target] = [
                grpc.aio.insecure_channel(target, options=[
                    ("grpc.max_receive_message_length", -1), ("mlkube.channel", index)])
                for index in range(CHANNELS_PER_UPSTREAM)
            ]  # fmt: skip
        self._turn += 1
        return channels[self._turn % len(channels)]

    async def _call(self, method: str, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        table = self.router.table
        if table is None:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"router has no config: {self.router.config_error}"
            )
        assert table is not None
        # Forwarded as received, binary (`-bin`) entries included, tracing headers among them.
        metadata = list(context.invocation_metadata() or ())
        values = {k: v for k, v in metadata if isinstance(v, str)}
        if table.auth_required:
            await self._authenticate(values, context)
            metadata = [(k, v) for k, v in metadata if k not in DROPPED]
        route, kind = await self._route(table, values.get(HEADER_DEPLOYMENT, "").strip(), context)
        if route.grpc_target is None:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"deployment {route.name!r} has no gRPC port"
            )
        assert route.grpc_target is not None
        forward = self._channel(route.grpc_target).unary_unary(method)
        started = time.perf_counter()
        try:
            answer: bytes = await forward(request, metadata=metadata, timeout=table.timeout)
        except grpc.aio.AioRpcError as exc:
            self.router.metrics.observe_request(
                route.name, STATUS_OF.get(exc.code(), 502), kind, time.perf_counter() - started
            )
            await context.send_initial_metadata(((HEADER_DEPLOYMENT, route.name),))
            await context.abort(exc.code(), exc.details() or "")
        self.router.metrics.observe_request(route.name, 200, kind, time.perf_counter() - started)
        await context.send_initial_metadata(((HEADER_DEPLOYMENT, route.name),))
        if kind == "live" and table.mirrors:
            self._mirror(table, route, method, request, metadata)
        return answer

    async def _authenticate(
        self, values: dict[str, str], context: grpc.aio.ServicerContext
    ) -> None:
        keys = self.router.keys
        try:
            if keys is None:
                raise RouterError("key auth is on but no keys file is configured")
            authorization, api_key = values.get("authorization"), values.get("api-key")
            keys.authenticate(
                authorization.encode() if authorization else None,
                api_key.encode() if api_key else None,
            )
        except RouterError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)

    async def _route(
        self, table: RoutingTable, target: str, context: grpc.aio.ServicerContext
    ) -> tuple[Route, str]:
        if target:
            route = table.routes.get(target)
            if route is None:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"deployment {target!r} does not exist in endpoint "
                    f"{table.config.endpoint!r} (valid: {table.valid_names})",
                )
            assert route is not None
            return route, "targeted"
        chosen = table.choose(self._rand())
        if chosen is None:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"endpoint {table.config.endpoint!r} sends no live traffic to "
                f"any deployment; target one with the {HEADER_DEPLOYMENT!r} "
                f"metadata (valid: {table.valid_names})",
            )
        assert chosen is not None
        return chosen, "live"

    def _mirror(
        self,
        table: RoutingTable,
        live: Route,
        method: str,
        request: bytes,
        metadata: list[tuple[str, str]],
    ) -> None:
        for shadow in table.pick_mirrors(live.name, self._rand):
            if shadow.grpc_target is None:
                continue
            if len(self._mirrors) >= table.config.mirror_concurrency:
                self.router.metrics.mirror_dropped.labels(shadow.name, "queue_full").inc()
                continue
            task = asyncio.get_running_loop().create_task(
                self._copy(shadow, method, request, metadata, table.timeout)
            )
            self._mirrors.add(task)
            task.add_done_callback(self._mirrors.discard)

    async def _copy(
        self,
        shadow: Route,
        method: str,
        request: bytes,
        metadata: list[tuple[str, str]],
        timeout: float,
    ) -> None:
        assert shadow.grpc_target is not None
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            await self._channel(shadow.grpc_target).unary_unary(method)(
                request, metadata=metadata, timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        self.router.metrics.observe_request(
            shadow.name, STATUS_OF.get(code, 502), "mirror", time.perf_counter() - started
        )

    async def close(self) -> None:
        for task in list(self._mirrors):
            task.cancel()
        for channels in self._channels.values():
            for channel in channels:
                await channel.close()
        self._channels.clear()


async def start_server(
    router: RouterApp, host: str, port: int, rand: Callable[[], float]
) -> tuple[grpc.aio.Server, GrpcProxy]:
    """The router's gRPC server on `host:port` (shared with its other workers)."""
    proxy = GrpcProxy(router, rand)
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", MAX_BODY_BYTES),
            ("grpc.max_send_message_length", -1),
        ]
    )
    server.add_generic_rpc_handlers((proxy,))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    await server.start()
    return server, proxy
