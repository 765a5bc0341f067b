"""Drive the drift sidecar's ASGI app in-process: one HTTP exchange, and waiting for the worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

import orjson

from mlkube_serving.drift.sidecar import DriftApp


def call(
    app: DriftApp,
    method: str,
    path: str,
    body: bytes = b"",
    chunk: int = 0,
    client: str = "127.0.0.1",
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """One HTTP exchange through the ASGI interface; returns (status, parsed body)."""
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "client": (client, 40000),
        "headers": [(b"content-type", content_type.encode())],
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
