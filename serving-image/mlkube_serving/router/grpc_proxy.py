"""The router's gRPC side: unary calls (the Open Inference Protocol's, or any other) proxied
to the deployments' gRPC ports with the same routing as HTTP.

One routing table serves both: the live split, the `x-mlkube-deployment` header (as gRPC
metadata) targeting one deployment, copies to mirror deployments, key auth (`authorization:
Bearer <key>` or `api-key` metadata, never forwarded). Calls are forwarded as bytes, never
decoded, so any unary method works. The answer carries the deployment that served it as
`x-mlkube-deployment` initial metadata, like the HTTP header; errors keep the upstream's status
code and details. Mirror copies are fire-and-forget, bounded by the config's mirror
concurrency and by its `mirrorMaxBytes` (one budget with the HTTP side's copies: each holds the
request and room for twice the live answer), shed copies are counted like HTTP's, and copies
count in the router's metrics with kind "mirror" (no agreement check: the answers are opaque
bytes here).

Live calls fail over like HTTP requests: when the chosen deployment's channel cannot connect,
nothing was sent, so the call goes to another live deployment (see `connected`). Request
messages are reserved in the worker's in-flight byte budget (`maxInflightBytes`, shared with
HTTP) while their call is forwarded; past it the call gets RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import grpc

from mlkube.contract import HEADER_DEPLOYMENT, HEADER_MIRRORED
from mlkube_serving._http.budget import ByteBudget
from mlkube_serving.router.asgi import MAX_BODY_BYTES
from mlkube_serving.router.errors import RouterError
from mlkube_serving.router.mirror import shadow_cap
from mlkube_serving.router.table import Route, RoutingTable

if TYPE_CHECKING:
    from mlkube_serving.router.app import RouterApp

log = logging.getLogger("mlkube_serving.router.grpc")

DROPPED: Final = frozenset({"authorization", "api-key"})
MIRROR_ENTRY: Final = (HEADER_MIRRORED, "true")  # marks a copy, as the HTTP header does
CHANNELS_PER_UPSTREAM: Final = 4
NO_DEPLOYMENT: Final = "none"  # the `deployment` label of calls refused before forwarding
# A channel that failed to connect stays in TRANSIENT_FAILURE until a background reconnect
# succeeds; gRPC's default backoff grows to 120 s, which would keep a restarted deployment out
# of the split that long. 5 s brings it back about as soon as the HTTP side does.
MAX_RECONNECT_BACKOFF_MS: Final = 5000
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
Connectivity = grpc.ChannelConnectivity


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One call as forwarded: the same bytes go to whichever deployment takes it."""

    method: str
    request: bytes
    metadata: list[tuple[str, str]]
    kind: str  # "live" (may fail over) or "targeted"
    deadline: float  # event loop time, shared by every attempt like HTTP's timeout


class Unreachable(Exception):
    """The call was not sent: the deployment's channel could not connect (or it has no port)."""


def connect_verdict(state: grpc.ChannelConnectivity) -> bool | None:
    """True: connected, send; False: the connect attempt failed; None: not known yet.

    READY is the only state a call is sent in (with wait_for_ready=False). TRANSIENT_FAILURE
    means the last connect attempt failed (refused, unresolvable), and SHUTDOWN a closed
    channel: a call started then fails in the channel's picker without being sent.
    """
    if state is Connectivity.READY:
        return True
    if state is Connectivity.TRANSIENT_FAILURE or state is Connectivity.SHUTDOWN:
        return False
    return None  # IDLE or CONNECTING: an attempt is under way


async def connected(channel: grpc.aio.Channel, timeout: float) -> bool:
    """Whether `channel` is connected, waiting at most `timeout` s (TimeoutError past it) for
    a connect attempt to end.

    This is the failover rule: a call is retried elsewhere only when this said False before
    it was sent. An UNAVAILABLE from a call that was sent is never retried, since it cannot
    tell "never delivered" from "processed, then the connection died": the details text
    ("failed to connect to all addresses") is the upstream's to choose too, and the channel's
    state after a failure says nothing about the moment the call was sent.
    """
    state = channel.get_state(try_to_connect=True)
    verdict = connect_verdict(state)
    if verdict is not None:
        return verdict  # the hot path: one C call, no await
    async with asyncio.timeout(timeout):
        while verdict is None:
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)
            verdict = connect_verdict(state)
    return verdict


def over_budget(budget: ByteBudget, size: int) -> str:
    """Why a `size`-byte request message was refused, and which setting holds more."""
    return (
        budget.spent(size, "a gRPC request message").message
        + "; to hold more at once raise maxInflightBytes in the router config (the operator "
        "writes a quarter of the router container's memory limit)"
    )


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
                    ("grpc.max_receive_message_length", -1), ("mlkube.channel", index),
                    ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS)])
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
        # A client's own x-mlkube-mirrored is dropped, as over HTTP: only copies carry it.
        metadata = [m for m in context.invocation_metadata() or () if m[0] != HEADER_MIRRORED]
        values = {k: v for k, v in metadata if isinstance(v, str)}
        if table.auth_required:
            await self._authenticate(values, context)
            metadata = [(k, v) for k, v in metadata if k not in DROPPED]
        route, kind = await self._route(table, values.get(HEADER_DEPLOYMENT, "").strip(), context)
        budget, size = self.router.inflight, len(request)
        if not budget.try_reserve(size):
            self.router.metrics.shed_requests.labels("request_bytes").inc()
            self.router.metrics.observe_request(NO_DEPLOYMENT, 429, kind, -1.0)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, over_budget(budget, size))
        deadline = asyncio.get_running_loop().time() + table.timeout  # covers every attempt
        outgoing = Outgoing(method, request, metadata, kind, deadline)
        try:  # released however the call ends: answered, aborted, failed or cancelled
            route, answer = await self._forward(table, route, outgoing, context)
        finally:
            budget.release(size)
        await context.send_initial_metadata(((HEADER_DEPLOYMENT, route.name),))
        if kind == "live" and table.mirrors:
            self._mirror(table, route, method, request, answer, metadata)
        return answer

    async def _forward(
        self,
        table: RoutingTable,
        route: Route,
        outgoing: Outgoing,
        context: grpc.aio.ServicerContext,
    ) -> tuple[Route, bytes]:
        """Send to `route`; a live call fails over to the other live deployments, weighted,
        while the chosen one cannot connect (nothing was sent). Targeted calls never move."""
        failed: list[str] = []
        failures: list[str] = []
        while True:
            try:
                return route, await self._send(table, route, outgoing, context)
            except Unreachable as exc:
                self.router.metrics.upstream_errors.labels(route.name, "unreachable").inc()
                failed.append(route.name)
                failures.append(f"{route.name}: {exc}")
                live = outgoing.kind == "live"
                nxt = table.choose_excluding(self._rand(), failed) if live else None
                if nxt is None:
                    self.router.metrics.observe_request(route.name, 503, outgoing.kind, -1.0)
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE,
                        "no deployment is reachable: " + "; ".join(failures)
                        if live
                        else f"deployment {route.name!r} is unreachable: {exc}",
                    )
                assert nxt is not None
                self.router.metrics.failovers.labels(route.name).inc()  # its answer under `nxt`
                route = nxt

    async def _send(
        self,
        table: RoutingTable,
        route: Route,
        outgoing: Outgoing,
        context: grpc.aio.ServicerContext,
    ) -> bytes:
        """One attempt: the answer, or Unreachable (nothing was sent); any other failure
        aborts the call with the upstream's status (DEADLINE_EXCEEDED while connecting)."""
        if route.grpc_target is None:
            raise Unreachable("it has no gRPC port")
        channel = self._channel(route.grpc_target)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            if not await connected(channel, outgoing.deadline - loop.time()):
                raise Unreachable(f"cannot connect to {route.grpc_target}")
        except TimeoutError:
            self.router.metrics.upstream_errors.labels(route.name, "timeout").inc()
            self.router.metrics.observe_request(route.name, 504, outgoing.kind, -1.0)
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"deployment {route.name!r} did not answer within {table.timeout:g} s",
            )
        try:
            answer: bytes = await channel.unary_unary(outgoing.method)(
                outgoing.request,
                metadata=outgoing.metadata,
                timeout=max(outgoing.deadline - loop.time(), 0.001),
                wait_for_ready=False,  # fail, never queue, if the connection drops meanwhile
            )
        except grpc.aio.AioRpcError as exc:  # it was sent: never retried, whatever the status
            status = STATUS_OF.get(exc.code(), 502)
            elapsed = time.perf_counter() - started
            self.router.metrics.observe_request(route.name, status, outgoing.kind, elapsed)
            await context.send_initial_metadata(((HEADER_DEPLOYMENT, route.name),))
            await context.abort(exc.code(), exc.details() or "")
        elapsed = time.perf_counter() - started
        self.router.metrics.observe_request(route.name, 200, outgoing.kind, elapsed)
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
        answer: bytes,
        metadata: list[tuple[str, str]],
    ) -> None:
        # The HTTP copies' budget: one mirrorMaxBytes, its limit set when a config is applied.
        budget = self.router.mirror.budget
        cost = len(request) + shadow_cap(answer)
        for shadow in table.pick_mirrors(live.name, self._rand):
            if shadow.grpc_target is None:
                continue
            if len(self._mirrors) >= table.config.mirror_concurrency:
                self.router.metrics.mirror_dropped.labels(shadow.name, "queue_full").inc()
                continue
            if not budget.try_reserve(cost):
                self.router.metrics.mirror_dropped.labels(shadow.name, "byte_budget").inc()
                continue
            task = asyncio.get_running_loop().create_task(
                self._copy(shadow, method, request, [*metadata, MIRROR_ENTRY], table.timeout)
            )
            self._mirrors.add(task)
            task.add_done_callback(self._mirrors.discard)
            # Released however the copy ends, even cancelled before it ran (close()).
            task.add_done_callback(lambda _task: budget.release(cost))

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
