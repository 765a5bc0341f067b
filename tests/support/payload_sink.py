"""An in-process CloudEvents sink for the payload logging tests (unit tier): a real loopback
HTTP/1.1 server on the test's event loop."""

from __future__ import annotations

import asyncio


class Sink:
    """An asyncio HTTP server that records POST bodies and answers `status`."""

    def __init__(self, status: int = 202, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/events"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                headers = {k.lower(): v for k, v in (x.split(": ", 1) for x in lines if x)}
                body = await reader.readexactly(int(headers["content-length"]))
                await asyncio.sleep(self.delay)
                self.received.append((headers, body))
                writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
