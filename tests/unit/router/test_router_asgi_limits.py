"""The router buffers bodies (mirroring needs them), so it bounds them: 413 past the limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mlkube_serving._http.asgi import read_body
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


def test_budget_reserves_the_body_and_refuses_what_does_not_fit() -> None:
    from mlkube_serving._http.budget import ByteBudget
    from mlkube_serving._http.errors import ServiceUnavailable

    budget = ByteBudget(6, "maxInflightBytes")
    body = asyncio.run(read_body(chunks(b"ab", b"cd"), limit=10, budget=budget))
    assert body == b"abcd" and budget.used == 4  # the caller releases len(body)
    with pytest.raises(ServiceUnavailable, match="6-byte budget \\(maxInflightBytes\\)"):
        asyncio.run(read_body(chunks(b"ab", b"cd"), limit=10, budget=budget))
    assert budget.used == 4  # the refused body left nothing reserved
    with pytest.raises(ServiceUnavailable):  # declared up front: refused before reading
        asyncio.run(read_body(chunks(b"abc"), limit=10, budget=budget, declared=3))
    budget.release(4)
    with pytest.raises(PayloadTooLarge):  # any error releases the partial reservation
        asyncio.run(read_body(chunks(b"ab", b"cdefgh"), limit=5, budget=budget))
    assert budget.used == 0
