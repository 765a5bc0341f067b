"""The router's HTTP/1.1 upstream pool against raw loopback servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from mlkube.devcluster.procs import free_port
from mlkube_serving._http.client import UpstreamPool, serialize_request
from mlkube_serving.router.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GET = serialize_request(b"GET", b"/x", b"host: t\r\n", b"", b"")


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def with_server(handler: Handler, test: Callable[[int], Awaitable[None]]) -> None:
    port = free_port()
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    try:
        await test(port)
    finally:
        server.close()


def deadline(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


def test_closed_keepalive_connection_is_retried_once_on_a_new_one() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(ok(b"first" if connections == 1 else b"second"))
        await writer.drain()
        writer.close()  # keep-alive advertised, but the server closes it while "idle"

    async def test(port: int) -> None:
        pool = UpstreamPool("127.0.0.1", port, 4)
        assert (await pool.request(GET, deadline())).body == b"first"
        await asyncio.sleep(0.05)
        assert (await pool.request(GET, deadline())).body == b"second"

    asyncio.run(with_server(handler, test))
    assert connections == 2


def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if b"/chunked" in request:
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 201 Created\r\nconnection: close\r\n\r\nuntil-eof")
        await writer.drain()
        writer.close()

    async def test(port: int) -> None:
        pool = UpstreamPool("127.0.0.1", port, 4)
        chunked = serialize_request(b"GET", b"/chunked", b"host: t\r\n", b"", b"")
        first = await pool.request(chunked, deadline())
        assert (first.status, first.body) == (200, b"hello world")
        assert (b"x-a", b"1") in first.headers
        second = await pool.request(GET, deadline())
        assert (second.status, second.body) == (201, b"until-eof")

    asyncio.run(with_server(handler, test))


def test_pool_never_opens_more_than_max_connections() -> None:
    active = peak = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            while True:
                try:
                    await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                await asyncio.sleep(0.02)
                writer.write(ok(b"ok"))
                await writer.drain()
        finally:
            active -= 1

    async def test(port: int) -> None:
        pool = UpstreamPool("127.0.0.1", port, 2)
        replies = await asyncio.gather(*(pool.request(GET, deadline()) for _ in range(10)))
        assert [r.body for r in replies] == [b"ok"] * 10
        assert pool.open_connections == 2
        pool.retire()
        assert pool.open_connections == 0

    asyncio.run(with_server(handler, test))
    assert peak == 2


def test_timeout_aborts_the_connection_so_a_late_answer_is_never_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if b"/slow" in request:
            await asyncio.sleep(0.5)
            writer.write(ok(b"late"))
        else:
            writer.write(ok(b"fresh"))
        await writer.drain()
        with_more = await reader.read(1)  # the aborted client closes: nothing more to serve
        assert with_more == b""

    async def test(port: int) -> None:
        pool = UpstreamPool("127.0.0.1", port, 1)
        slow = serialize_request(b"GET", b"/slow", b"host: t\r\n", b"", b"")
        with pytest.raises(UpstreamTimeout):
            await pool.request(slow, deadline(0.1))
        assert pool.open_connections == 0
        assert (await pool.request(GET, deadline())).body == b"fresh"

    asyncio.run(with_server(handler, test))


def test_refused_and_garbage_map_to_router_errors() -> None:
    async def refused() -> None:
        pool = UpstreamPool("127.0.0.1", free_port(), 1)
        with pytest.raises(UpstreamUnreachable, match="refused"):
            await pool.request(GET, deadline())
        assert pool.open_connections == 0

    asyncio.run(refused())

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async def test(port: int) -> None:
        pool = UpstreamPool("127.0.0.1", port, 1)
        with pytest.raises(UpstreamError, match="invalid HTTP"):
            await pool.request(GET, deadline())

    asyncio.run(with_server(garbage, test))
