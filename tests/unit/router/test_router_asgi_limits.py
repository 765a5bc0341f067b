"""The router buffers bodies (mirroring needs them), so it bounds them: 413 past the limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mlkube_serving.router.asgi import read_body
from mlkube_serving.router.errors import PayloadTooLarge


def chunks(*parts: bytes) -> Any:
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return receive


def test_body_within_the_limit_is_joined() -> None:
    assert asyncio.run(read_body(chunks(b"ab", b"cd"), limit=4)) == b"abcd"


def test_streamed_body_past_the_limit_is_refused_without_buffering_the_rest() -> None:
    receive = chunks(b"abc", b"def", b"ghi")
    with pytest.raises(PayloadTooLarge, match="exceeds 5 bytes") as err:
        asyncio.run(read_body(receive, limit=5))
    assert err.value.status == 413


def test_single_message_past_the_limit_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(chunks(b"x" * 10), limit=5))
