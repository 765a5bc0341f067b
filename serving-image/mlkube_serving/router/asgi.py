"""ASGI plumbing shared by the router's handlers: types, header policy, body and JSON replies.

Kept apart from app.py so the routing logic reads top to bottom without HTTP details, and so
the header policy (what is hop-by-hop, what the router rewrites) is defined in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlkube.contract import HEADER_AZUREML_DEPLOYMENT, HEADER_DEPLOYMENT, HEADER_MIRRORED
from mlkube_serving.router.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TARGET_HEADERS = frozenset({HEADER_DEPLOYMENT.encode(), HEADER_AZUREML_DEPLOYMENT.encode()})
# Hop-by-hop headers and those the router rewrites; clients may not forge the mirror mark.
DROP_REQUEST = frozenset(
    {
        b"host",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        HEADER_MIRRORED.encode(),
    }
)
DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"trailer",
        b"upgrade",
        b"content-length",
        HEADER_DEPLOYMENT.encode(),
    }
)
DEPLOYMENT_HEADER = HEADER_DEPLOYMENT.encode()
METHODS = {m: m.encode() for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}
JSON_TYPE = (b"content-type", b"application/json")
WWW_AUTHENTICATE = (b"www-authenticate", b'Bearer realm="mlkube"')


# Bodies are buffered (mirroring needs them), so they are bounded: the model server's default.
MAX_BODY_BYTES = 32 * 1024 * 1024


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The whole request body, or None if the client disconnected first.

    Raises PayloadTooLarge as soon as more than `limit` bytes arrived.
    """
    message = await receive()
    if message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    if not message.get("more_body", False):
        return body
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a complete JSON response (the router's own answers and errors)."""
    headers = [JSON_TYPE, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
