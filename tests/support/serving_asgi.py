"""Drive the model server's ASGI app in-process: no sockets, no threads, real app code."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mlkube_serving.app import ServingApp
from mlkube_serving.dataplane import DataPlane
from mlkube_serving.runtimes import create_runtime
from mlkube_serving.settings import Settings


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def _call(
    app: ServingApp,
    method: str,
    path: str,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    chunk: int | None,
) -> Answer:
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
        for i, p in enumerate(pieces or [b""])
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    await app(scope, receive, send)
    start = sent[0]
    return Answer(
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


def call(
    app: ServingApp,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | list[Any] = b"",
    headers: dict[str, str] | None = None,
    chunk: int | None = None,
) -> Answer:
    """Send one request through the ASGI app in-process."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    header_list = [(b"content-length", str(len(raw)).encode())]
    header_list += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return asyncio.run(_call(app, method, path, raw, header_list, chunk))


def make_app(
    model_dir: Path, name: str = "m", version: str | None = None, **settings: Any
) -> ServingApp:
    dataplane = DataPlane()
    dataplane.load_model(name, version, create_runtime(str(model_dir)))
    return ServingApp(dataplane, Settings(**settings))
