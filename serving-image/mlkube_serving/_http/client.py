"""A minimal keep-alive HTTP/1.1 client: one connection pool per upstream (router, drift hook).

Why not aiohttp or httpx: the router does one thing per request (send bytes, read a response
into bytes) and a general client's per-request machinery (cookie jars, tracing hooks, URL
objects, response wrappers) costs more than the rest of the hot path together. Measured on
this project's benchmark (docs/benchmarks/router.md), this pool of `asyncio.Protocol`
connections parsed with httptools (already a uvicorn dependency) is several times cheaper.

The pool is LIFO (warm connections are reused, cold ones expire at the upstream), bounded by
`max_connections` with FIFO hand-off to waiters, and retries once on a fresh connection when
a reused keep-alive connection turns out to be closed before any response byte arrived (the
upstream closed it while idle; nothing was processed, so resending is safe).

Every response is bounded in bytes: past `max_response_bytes` (declared or received) the
exchange fails with `UpstreamTooLarge` and the connection is dropped, so an upstream that
answers without end costs a 502, never the caller's memory. With a `budget` (the router's
in-flight bytes) the answer is also reserved in it, at its declared content-length or as
chunks arrive: many answers at once are bounded in total, not just one at a time. One that
does not fit fails with the budget's 503 (`ServiceUnavailable`) and the connection is dropped;
a complete answer's `len(body)` stays reserved and the caller releases it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from typing import NamedTuple, cast

import httptools

from mlkube_serving._http.budget import ByteBudget
from mlkube_serving._http.errors import (
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnreachable,
)

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class UpstreamResponse(NamedTuple):
    """A complete upstream response; header names are lowercased."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _StaleConnection(UpstreamError):
    """The connection closed before any response byte: the request was not processed."""


class _Connection(asyncio.Protocol):
    """One upstream TCP connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._framed = False
        self._head_request = False
        self._got_bytes = False
        self._size = 0
        self._cap = DEFAULT_MAX_RESPONSE_BYTES
        self._budget: ByteBudget | None = None
        self._reserved = 0  # bytes of this answer reserved in `_budget`
        self.reusable = False
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not a check.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for (idle connection): its state is unknown, never reuse it.
            self.abort()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"upstream sent invalid HTTP: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._framed:
            # Close-delimited body (no content-length, not chunked): EOF ends the message.
            self._finish()
        elif not self._got_bytes:
            self._fail(_StaleConnection("upstream closed the connection before answering"))
        else:
            self._fail(UpstreamError("upstream closed the connection mid-response"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self._framed = True
            declared = name == b"content-length" and not self._head_request and value.isdigit()
            if declared:
                size = int(value)
                if size > self._cap:
                    self._too_large(f"declares {size} bytes")
                elif (budget := self._budget) is not None:
                    if budget.used + size > budget.limit:
                        self._over_budget(size)
                        return
                    budget.used += size  # inline, not try_reserve(): every answer's path
                    self._reserved = size
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        if self._head_request:
            # The parser cannot be told a HEAD response has no body; end it here, drop the conn.
            self._finish()
            self.abort()

    def on_body(self, body: bytes) -> None:
        if self.closed:
            return  # cut off already: the rest of this read is discarded
        self._size += len(body)
        if self._size > self._cap:
            self._too_large("sent more")
            return
        if self._size > self._reserved and self._budget is not None:
            # Chunked, close-delimited or longer than declared: reserve as the bytes arrive.
            more = self._size - self._reserved
            if not self._budget.try_reserve(more):
                self._over_budget(more)
                return
            self._reserved = self._size
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        self._finish()

    def _too_large(self, what: str) -> None:
        self._fail(UpstreamTooLarge(f"response {what} than the {self._cap}-byte limit"))
        self._body = []
        self.abort()

    def _over_budget(self, size: int) -> None:
        assert self._budget is not None
        self._fail(self._budget.spent(size, "an upstream answer"))
        self._body = []
        self.abort()

    # client side
    def _finish(self) -> None:
        self._cancel_timer()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            if self._reserved:
                # The caller owns exactly len(body) reserved bytes from here on.
                if self._reserved != len(body):
                    self._budget.release(self._reserved - len(body))  # type: ignore[union-attr]
                self._reserved = 0
            waiter.set_result(UpstreamResponse(self._status, self._headers, body))

    def _fail(self, exc: Exception) -> None:
        self._cancel_timer()
        self.reusable = False
        if self._reserved:
            self._budget.release(self._reserved)  # type: ignore[union-attr]
            self._reserved = 0
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(
        self,
        data: bytes,
        head_request: bool,
        deadline: float,
        cap: int,
        budget: ByteBudget | None = None,
    ) -> asyncio.Future[UpstreamResponse]:
        """Write one request; the future resolves with the complete response.

        `deadline` is in loop time; past it the future fails with `UpstreamTimeout` and the
        connection is aborted so a late answer can never be read by another request.
        """
        self._waiter = waiter = self._loop.create_future()
        self._status = 0
        self._headers = []
        self._body = []
        self._headers_done = self._framed = self._got_bytes = self.reusable = False
        self._head_request = head_request
        self._size = 0
        self._cap = cap
        self._budget = budget
        self._reserved = 0
        if self.closed or self._transport is None:
            waiter.set_exception(_StaleConnection("connection already closed"))
        else:
            self._timer = self._loop.call_at(deadline, self._time_out)
            self._transport.write(data)
        return waiter

    def _time_out(self) -> None:
        self._fail(UpstreamTimeout("no answer before the deadline"))
        self.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        self.reusable = False
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


class UpstreamPool:
    """Keep-alive connections to one `host:port`, at most `max_connections` open at once."""

    def __init__(
        self,
        host: str,
        port: int,
        max_connections: int,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._retired = False

    async def request(
        self,
        data: bytes,
        deadline: float,
        *,
        head_request: bool = False,
        max_response_bytes: int | None = None,
        budget: ByteBudget | None = None,
    ) -> UpstreamResponse:
        """Send a serialized request (head and body) and return the response.

        `deadline` is in event-loop time and covers waiting for a connection, connecting and
        the exchange. Raises `UpstreamUnreachable` when no connection could be opened (nothing
        was sent), `UpstreamTimeout` past the deadline, `UpstreamTooLarge` past the response
        cap (the pool's, or the smaller `max_response_bytes`) and `UpstreamError` when the
        upstream broke the exchange. With a `budget` the answer is reserved in it (503
        `ServiceUnavailable` when it does not fit) and the caller releases `len(body)`.
        """
        cap = self.max_response_bytes
        if max_response_bytes is not None and max_response_bytes < cap:
            cap = max_response_bytes
        for attempt in (0, 1):
            # The retry goes to a fresh connection: another idle one may be just as stale.
            conn = self._take_idle() if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn, reused = await self._acquire_slow(deadline)
            waiter = conn.send(data, head_request, deadline, cap, budget)
            try:
                response = await waiter
            except _StaleConnection as exc:
                self._discard(conn)
                if reused and attempt == 0:
                    continue
                raise UpstreamError(f"upstream {self.host}:{self.port}: {exc}") from exc
            except BaseException:
                self._discard(conn)
                answered = waiter.done() and not waiter.cancelled() and not waiter.exception()
                if budget is not None and answered:  # answered, then we were cancelled
                    budget.release(len(waiter.result().body))
                raise
            self._release(conn)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        return None

    async def _acquire_slow(self, deadline: float) -> tuple[_Connection, bool]:
        """Wait for a free connection or slot, then connect; all within `deadline`."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._wait_or_connect()
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"no connection to {self.host}:{self.port} before the deadline"
            ) from exc

    async def _wait_or_connect(self) -> tuple[_Connection, bool]:
        if self._open >= self.max_connections:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())
                raise
            if handed is not None:
                return handed, True
            # A slot was handed over (its connection closed): open a new one in its place.
        else:
            self._open += 1
        try:
            return await self._connect(), False
        except BaseException:
            self._pass_on(None)
            raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Connection(loop), self.host, self.port)
        except OSError as exc:
            if isinstance(exc, socket.gaierror):  # DNS: errno is a negative EAI_* code
                reason = f"cannot resolve host: {exc.strerror}"
            elif exc.errno:
                reason = os.strerror(exc.errno)
            else:
                reason = str(exc) or type(exc).__name__
            raise UpstreamUnreachable(
                f"cannot connect to {self.host}:{self.port}: {reason.lower()}"
            ) from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not conn.closed and not self._retired:
            self._pass_on(conn)
        else:
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        if not conn.closed:
            conn.abort()
        self._pass_on(None)

    def _pass_on(self, conn: _Connection | None) -> None:
        """Give a connection (or, when None, the slot of a closed one) to the next waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is None:
            self._open -= 1
        else:
            self._idle.append(conn)

    @property
    def open_connections(self) -> int:
        return self._open

    def retire(self) -> None:
        """Stop reusing connections: close idle ones now, busy ones when they are released."""
        self._retired = True
        while self._idle:
            self._idle.pop().abort()
            self._open -= 1


class PoolRegistry:
    """Pools keyed by `host:port` and limits, shared across routing tables so reloads keep them."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, int, int, int], UpstreamPool] = {}

    def get(
        self,
        host: str,
        port: int,
        max_connections: int,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> UpstreamPool:
        key = (host, port, max_connections, max_response_bytes)
        pool = self._pools.get(key)
        if pool is None:
            pool = UpstreamPool(host, port, max_connections, max_response_bytes)
            self._pools[key] = pool
        return pool

    def retain(self, keep: list[UpstreamPool]) -> None:
        """Retire every pool not in `keep` (called after a reload swapped the table)."""
        wanted = {id(pool) for pool in keep}
        for key, pool in list(self._pools.items()):
            if id(pool) not in wanted:
                pool.retire()
                del self._pools[key]

    def close(self) -> None:
        self.retain([])


def serialize_request(
    method: bytes, target: bytes, host_line: bytes, headers: bytes, body: bytes
) -> bytes:
    """One HTTP/1.1 request as bytes; `headers` is a block of `name: value\\r\\n` lines."""
    return b"".join(
        (
            method,
            b" ",
            target,
            b" HTTP/1.1\r\n",
            host_line,
            headers,
            b"content-length: ",
            str(len(body)).encode(),
            b"\r\n\r\n",
            body,
        )
    )
