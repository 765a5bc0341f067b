"""uvicorn's httptools protocol with a synchronous lane for small inference requests.

Under ASGI every request costs a task, a request/response cycle object, an event, a scope and
four message dicts before the app sees a byte: on a 2-core machine that is most of the echo
floor's 20-40 µs, more than the model itself. A small inference request to an inline-safe
model (`ServingApp.inline_route` decides, from the path and the declared length) needs none
of it: its body is complete when the parser says so, the dataplane answers in microseconds,
and the answer can be written from the parser callback. This protocol does exactly that and
hands everything else (large or chunked bodies, user code, batching, `Expect: 100-continue`,
pipelined requests behind a running one, upgrades) to uvicorn's ASGI path unchanged, so limits,
timeouts, threads and graceful shutdown keep working as before.

It subclasses a class uvicorn does not document as public API (checked with uvicorn 0.54).
`protocol_class()` uses it only when that class still has the hooks it overrides and calls,
else plain "httptools"; the unit and process tests run both lanes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from mlkube_serving.app import ServingApp
from mlkube_serving.routes import Route

log = logging.getLogger(__name__)
_POST = b"POST"
_CLOSE = b"connection: close\r\n"


class InlineHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus the inline lane (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        # uvicorn may wrap the app (proxy headers, message logger); the lane needs ours.
        while not isinstance(app, ServingApp) and hasattr(app, "app"):
            app = app.app
        self.serving: ServingApp | None = app if isinstance(app, ServingApp) else None
        self.inline: Route | None = None
        self.inline_body: list[bytes] = []
        self.idle_since: float | None = None
        self.discarding = False  # a request after this connection's closing answer
        self.closing = False  # shutdown() came while an inline request was being read

    # Keep-alive: uvicorn arms a timer after every response and cancels it on the next
    # bytes, a TimerHandle per request (a tenth of a small request's CPU). Here a connection
    # keeps at most one timer, which re-arms itself when the connection was busy meanwhile.

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None  # busy: the timer, if any, finds this and re-arms later

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_since = now = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_at(
                now + self.timeout_keep_alive, self._keep_alive_due
            )

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        idle_since = self.idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy; the response that ends it arms a new timer
        due = idle_since + self.timeout_keep_alive
        if self.loop.time() >= due:
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_at(due, self._keep_alive_due)

    def connection_lost(self, exc: Exception | None) -> None:
        task = self.timeout_keep_alive_task
        if task is not None:
            task.cancel()
            self.timeout_keep_alive_task = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.inline is not None:
            self.closing = True  # its body is still arriving: answer it, then close
            return
        super().shutdown()

    def on_message_begin(self) -> None:
        # The ASGI scope is built only when the request leaves the inline lane.
        self.inline = None
        self.idle_since = None  # a request in progress: the keep-alive timer must not close
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        if self.transport.is_closing():
            # Pipelined behind an answer that closed the connection: not served, as uvicorn
            # does not start a pipelined request on a closing transport.
            self.discarding = True
            return
        serving = self.serving
        cycle = self.cycle
        parser = self.parser
        if (
            serving is not None
            and (cycle is None or cycle.response_complete)
            and not self.expect_100_continue
            and parser.get_method() == _POST
            and not parser.should_upgrade()
        ):
            route = serving.inline_route(self.url, self.headers)
            if route is not None:
                self.inline = route
                self.inline_body = []
                return
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()  # uvicorn's scope, then what the parser gave so far
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.discarding:
            return
        if self.inline is not None:
            self.inline_body.append(body)  # bounded: inline_route checked the declared length
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.discarding:
            self.discarding = False
            return
        route = self.inline
        if route is None:
            super().on_message_complete()
            return
        self.inline = None
        serving = self.serving
        assert serving is not None
        chunks = self.inline_body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.inline_body = []
        reply = serving.serve_inline(route, self.headers, body)
        keep_alive = (
            self.parser.should_keep_alive()
            and self.parser.get_http_version() != "1.0"
            and not self.closing
        )
        head = [response_head(reply.status, reply.content_type, self.server_state.default_headers),
                str(len(reply.body)).encode(), b"\r\n"]  # fmt: skip
        for name, value in reply.headers:
            head += (name, b": ", value, b"\r\n")
        if not keep_alive:
            head.append(_CLOSE)
        head += (b"\r\n", reply.body)
        transport = self.transport
        transport.write(b"".join(head))
        if not keep_alive:
            self.server_state.total_requests += 1
            transport.close()
            return
        self.on_response_complete()


_heads: dict[tuple[int, bytes], tuple[list[tuple[bytes, bytes]], bytes]] = {}


def response_head(status: int, content_type: bytes, defaults: list[tuple[bytes, bytes]]) -> bytes:
    """Status line, uvicorn's default headers (date, server) and content-type, up to the
    content-length value. uvicorn replaces its default-header list every second (the date),
    so a cached head is reused while the list is the same object."""
    key = (status, content_type)
    cached = _heads.get(key)
    if cached is not None and cached[0] is defaults:
        return cached[1]
    parts = [STATUS_LINE[status]]
    for name, value in defaults:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"content-type: ", content_type, b"\r\ncontent-length: ")
    head = b"".join(parts)
    if cached is not None or len(_heads) < 64:  # statuses times content types: a handful
        _heads[key] = (defaults, head)
    return head


_HOOKS = ("on_message_begin", "on_headers_complete", "on_body", "on_message_complete",
          "on_response_complete", "_unset_keepalive_if_required", "_start_asgi_task",
          "timeout_keep_alive_handler", "connection_lost")  # fmt: skip


def protocol_class() -> type[asyncio.Protocol] | str:
    """The protocol for uvicorn's `http` setting: this one when this uvicorn has every hook
    it relies on, else uvicorn's own httptools protocol (no inline lane, same behaviour)."""
    if all(callable(getattr(HttpToolsProtocol, hook, None)) for hook in _HOOKS):
        return InlineHttpProtocol
    log.warning("uvicorn %s lacks the protocol hooks of the inline lane: serving over ASGI only",
                uvicorn.__version__)  # fmt: skip
    return "httptools"
