"""The model server as a raw ASGI application: routing, limits, errors and metrics.

No framework on the hot path: a one-row request is read from the first ASGI message, resolved
without regexes, run inline on the event loop (inference of small requests takes microseconds,
less than a thread hop) and answered with a precomputed header list. Large bodies and user
code (scoring scripts, Seldon classes) run in a thread under the request timeout instead, so
the loop keeps answering probes. Every failure becomes a `{"error": ...}` response with the
status its `ServingError` carries; nothing a client sends can produce an unhandled exception.

Memory is bounded in bytes: bodies waiting for or running in the thread are reserved in a
queued-bytes budget (`MLKUBE_MAX_QUEUED_BYTES`, default a quarter of the container memory
limit): a body that does not fit now is a 503, one that could never fit a 413, both with the
reason. A body stays reserved until the thread is done with it, not until its request
times out: a timed-out request's body is still held by the running inference. Small inline
bodies run to completion before the next one is read, so they hold nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from mlkube_serving import metrics
from mlkube_serving._http.asgi import Message, Receive, Scope, Send, declared_length, read_body
from mlkube_serving._http.budget import ByteBudget, derived_budget
from mlkube_serving.batching import Batcher, BatchSettings
from mlkube_serving.dataplane import DataPlane
from mlkube_serving.errors import (
    ClientDisconnected,
    PayloadTooLarge,
    RequestTimeout,
    ServingError,
    TooManyRequests,
    render_error,
)
from mlkube_serving.payload_log import PayloadLogger
from mlkube_serving.protocols import Call, Reply, v2
from mlkube_serving.protocols.v2_plain import infer_plain
from mlkube_serving.routes import Route, resolve
from mlkube_serving.settings import Settings
from mlkube_serving.termination import write_termination_message

log = logging.getLogger(__name__)

Hook = Callable[["ServingApp"], Awaitable[None]]

UNKNOWN_MODEL = (
    "_unknown"  # metrics label for requests naming no served model (bounded cardinality)
)
_INTERNAL = b'{"error":"internal server error"}'
INLINE_ROUTES = 256  # cached inline-lane routes by raw URL


class ServingApp:
    """ASGI callable serving one dataplane."""

    def __init__(
        self,
        dataplane: DataPlane,
        settings: Settings | None = None,
        on_startup: Hook | None = None,
        on_shutdown: Hook | None = None,
        payload_log: PayloadLogger | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.payload_log = payload_log
        self.settings = settings or Settings()
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self.inflight = 0
        self.queued = ByteBudget(
            self.settings.max_queued_bytes or default_queued_bytes(), "MLKUBE_MAX_QUEUED_BYTES"
        )
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlkube-infer")
        self.batcher: Batcher | None = None
        self.inline_ok = False  # set once the models loaded: see inline_route
        self._inline_routes: dict[bytes, Route] = {}
        size = self.settings.max_batch_size
        if size >= 2:
            batching = BatchSettings(size, self.settings.max_batch_latency_ms / 1000)
            self.batcher = Batcher(dataplane, batching, lambda: self.inflight, self.pool)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        route: Route | None = None
        call: Call | None = None
        try:
            route = resolve(scope["method"], scope["path"])
            call = Call(self.dataplane, route.model, route.version, b"", scope["headers"])
            if route.inference:
                reply = await self._guarded(route, call, scope, receive)
            else:
                reply = route.handler(call)
        except ClientDisconnected:
            if route is not None and route.inference and call is not None:
                model = call.model if self.dataplane.has_model(call.model) else UNKNOWN_MODEL
                metrics.observe_request(model or UNKNOWN_MODEL, route.protocol,
                                        ClientDisconnected.status,
                                        time.perf_counter() - started)  # fmt: skip
            return  # no one to answer
        except ServingError as exc:
            status, body = render_error(exc)
            headers = ((b"connection", b"close"),) if isinstance(exc, PayloadTooLarge) else ()
            reply = Reply(status, body, headers)
        except Exception:
            log.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            reply = Reply(500, _INTERNAL)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type),
                    (b"content-length", str(len(reply.body)).encode()),
                    *reply.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})
        if route is not None and route.inference and call is not None:
            self._record(route, call, reply, started)

    def _record(self, route: Route, call: Call, reply: Reply, started: float) -> None:
        """Metrics and payload logging of an answered inference request."""
        model = call.model if self.dataplane.has_model(call.model) else UNKNOWN_MODEL
        metrics.observe_request(
            model or UNKNOWN_MODEL, route.protocol, reply.status, time.perf_counter() - started
        )
        payload_log = self.payload_log
        # Only exchanges whose body was read (a 413 or 429 before it has nothing to log).
        if payload_log is not None and call.body and payload_log.coin() < payload_log.rate:
            payload_log.offer(model or UNKNOWN_MODEL, call.body,
                              call.header(b"content-type") or b"application/json",
                              reply.status, reply.body, reply.content_type)  # fmt: skip

    def inline_route(self, url: bytes, headers: list[tuple[bytes, bytes]]) -> Route | None:
        """The route of a POST that may be answered from the parser callback (see
        inline_protocol.py), else None: the ASGI path then serves it, errors included.

        Inline means: an inference route of an inline-safe dataplane without a batcher, a
        declared body no larger than the inline size, a plain path, and room under the
        concurrency limit (the ASGI path answers the 429)."""
        if not self.inline_ok or self.inflight >= self.settings.max_concurrency:
            return None
        route = self._inline_routes.get(url)
        if route is None:
            path = url.split(b"?", 1)[0]
            if b"%" in path:
                return None
            try:
                route = resolve("POST", path.decode("ascii"))
            except (ServingError, UnicodeDecodeError):
                return None
            if not route.inference:
                return None
            if len(self._inline_routes) >= INLINE_ROUTES:
                self._inline_routes.clear()  # bounded: paths come from clients
            self._inline_routes[url] = route
        declared = -1
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit():
                    return None
                declared = int(value)
            elif name == b"transfer-encoding":
                return None
        if declared < 0 or declared > self.settings.inline_max_bytes:
            return None
        if declared > self.settings.max_body_bytes or declared > self.queued.limit:
            return None  # the ASGI path answers the 413
        return route

    def open_inline_lane(self) -> None:
        """Let the protocol answer small requests inline, once every model has loaded."""
        self.inline_ok = self.batcher is None and self.dataplane.inline_safe

    def serve_inline(self, route: Route, headers: list[tuple[bytes, bytes]], body: bytes) -> Reply:
        """Answer an `inline_route` request synchronously, as `_http` would."""
        started = time.perf_counter()
        if route.handler is v2.infer and self.payload_log is None and route.model is not None:
            try:
                plain = infer_plain(self.dataplane, route.model, route.version, body, headers)
            except Exception:  # a bug there must not become a parser error: the general path
                log.exception("the plain V2 shortcut failed; answering through the general path")
                plain = None
            if plain is not None:
                try:
                    metrics.observe_request(
                        route.model, route.protocol, 200, time.perf_counter() - started
                    )
                except Exception:  # as `_record` below: metrics never undo an answer
                    log.exception("recording an inline %s request failed", route.protocol)
                return plain
        call = Call(self.dataplane, route.model, route.version, body, headers)
        try:
            reply = route.handler(call)
        except ServingError as exc:
            status, text = render_error(exc)
            reply = Reply(status, text)
        except Exception:
            log.exception("unhandled error serving POST inline %s", route.protocol)
            reply = Reply(500, _INTERNAL)
        try:
            self._record(route, call, reply, started)
        except Exception:  # metrics or logging must not turn an answer into a parser error
            log.exception("recording an inline %s request failed", route.protocol)
        return reply

    async def _guarded(self, route: Route, call: Call, scope: Scope, receive: Receive) -> Reply:
        """Concurrency limit, body limit, inline-or-thread execution and the request timeout."""
        limit = self.settings.max_concurrency
        if self.inflight >= limit:
            raise TooManyRequests(f"too many concurrent requests (limit {limit} per worker)")
        self.inflight += 1
        try:
            declared = self._check_declared_length(scope)
            first = await receive()
            if first["type"] == "http.disconnect":
                raise ClientDisconnected("client disconnected before sending a body")
            if not first.get("more_body"):
                body = first.get("body", b"")
                if len(body) > self.settings.max_body_bytes:
                    raise self._too_large()
                if len(body) <= self.settings.inline_max_bytes:
                    if self.batcher is not None and route.handler is v2.infer:
                        call.body = body
                        return await self._batched(call, self.batcher)
                    if self.dataplane.inline_safe:
                        call.body = body
                        return route.handler(call)  # fast path: no timer, no thread, not queued
            return await self._queued(route, call, first, receive, declared)
        finally:
            self.inflight -= 1

    async def _queued(
        self, route: Route, call: Call, first: Message, receive: Receive, declared: int | None
    ) -> Reply:
        """Read the body into the queued-bytes budget and run it in the thread, timed."""
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                call.body = await read_body(
                    receive,
                    self.settings.max_body_bytes,
                    first=first,
                    budget=self.queued,
                    declared=declared,
                )
                try:
                    task = self.pool.submit(route.handler, call)
                except BaseException:
                    self.queued.release(len(call.body))
                    raise
                task.add_done_callback(self.releaser(len(call.body)))
                return await asyncio.wrap_future(task)
        except TimeoutError as exc:
            raise RequestTimeout(
                f"request did not finish within {self.settings.request_timeout:g}s"
            ) from exc

    async def _batched(self, call: Call, batcher: Batcher) -> Reply:
        """A small V2 request through the batcher: decoded on the loop, its batch run inline
        (inline-safe runtimes) or in the inference thread, under the request timeout."""
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                return await v2.infer_batched(call, batcher)
        except TimeoutError as exc:
            raise RequestTimeout(
                f"request did not finish within {self.settings.request_timeout:g}s"
            ) from exc

    def releaser(self, size: int) -> Callable[[object], None]:
        """A done-callback giving `size` bytes back to the budget on the event loop.

        It runs when the thread finished with the body (or the task was cancelled before it
        started), possibly in the thread: the budget is the loop's, so the release is posted.
        """
        loop = asyncio.get_running_loop()

        def release(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(self.queued.release, size)

        return release

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body exceeds {self.settings.max_body_bytes} bytes")

    def _check_declared_length(self, scope: Scope) -> int | None:
        """The declared body length; 413 when it passes the body cap or the whole budget."""
        declared = declared_length(scope)
        if declared is None:
            return None
        if declared > self.settings.max_body_bytes:
            raise self._too_large()
        if declared > self.queued.limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes exceeds the server's queued-bytes budget "
                f"of {self.queued.limit} (MLKUBE_MAX_QUEUED_BYTES)"
            )
        return declared

    async def _sample_inflight(self, interval: float = 0.5) -> None:
        """Publish the in-flight count periodically: a gauge write per request would cost an
        mmap write on the hot path in multiprocess mode; an HPA reads it every 15 s anyway."""
        while True:
            metrics.set_inflight(self.settings.model_name, self.inflight)
            await asyncio.sleep(interval)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        sampler: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._on_startup is not None:
                        await self._on_startup(self)
                except Exception as exc:
                    log.exception("startup failed")
                    write_termination_message(f"model load failed: {exc}")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                sampler = asyncio.get_running_loop().create_task(self._sample_inflight())
                self.open_inline_lane()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.dataplane.draining = True
                self.inline_ok = False
                if sampler is not None:
                    sampler.cancel()
                try:
                    if self._on_shutdown is not None:
                        await self._on_shutdown(self)
                finally:
                    self.pool.shutdown(wait=False, cancel_futures=True)
                    await send({"type": "lifespan.shutdown.complete"})
                return


def default_queued_bytes() -> int:
    """A quarter of the container memory limit (downward API), else 256 MiB."""
    return derived_budget(1 / 4, 256 * 1024 * 1024)
