"""ASGI plumbing every data-plane app uses: types, complete JSON replies, capped body reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlkube_serving._http.budget import ByteBudget
from mlkube_serving._http.errors import ClientDisconnected, HttpError, PayloadTooLarge, render_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json")


async def respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a complete JSON response."""
    headers = [JSON_TYPE, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_error(
    send: Send, exc: HttpError, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send `exc` as its status and `{"error": ...}` body."""
    status, body = render_error(exc)
    await respond(send, status, body, extra)


def declared_length(scope: Scope) -> int | None:
    """The request's content-length header, when it carries a valid one."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body exceeds {limit} bytes")


async def read_body(
    receive: Receive,
    limit: int,
    first: Message | None = None,
    budget: ByteBudget | None = None,
    declared: int | None = None,
) -> bytes:
    """The whole request body; raises as soon as more than `limit` bytes arrived.

    `first` is a message the caller already received. Raises `PayloadTooLarge` past `limit`
    (nothing more is buffered) and `ClientDisconnected` when the client went away first.

    With a `budget` the body's bytes are reserved in it: the `declared` content-length up
    front (so a body that cannot fit is refused before a byte of it is read), else each chunk
    as it arrives; `ServiceUnavailable` when they do not fit. The caller releases `len(body)`
    once done with the body; on any error nothing stays reserved.
    """
    reserved = 0
    if budget is not None and declared is not None:
        if budget.used + declared > budget.limit:
            raise budget.spent(declared)
        budget.used += declared  # inline, not try_reserve(): this is every request's path
        reserved = declared
    try:
        message = first if first is not None else await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected("client disconnected before sending a body")
        body: bytes = message.get("body", b"")
        size = len(body)
        if size > limit:
            raise too_large(limit)
        if budget is not None and size > reserved:
            if not budget.try_reserve(size - reserved):
                raise budget.spent(size - reserved)
            reserved = size
        if not message.get("more_body", False):
            if reserved > size:
                budget.release(reserved - size)  # type: ignore[union-attr]
            return body  # the common case: one message, no join
        chunks = [body]
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnected("client disconnected before the body was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            if budget is not None and size > reserved:
                if not budget.try_reserve(size - reserved):
                    raise budget.spent(size - reserved)
                reserved = size
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except BaseException:
        if budget is not None:
            budget.release(reserved)
        raise
    if reserved > size:
        budget.release(reserved - size)  # type: ignore[union-attr]
    return b"".join(chunks)
