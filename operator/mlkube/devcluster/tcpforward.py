"""A TCP forwarder so pods reach the dev API server without it leaving loopback.

The API server binds 127.0.0.1 only (nothing on the machine's network); the real node's pods
reach it through the `kubernetes` Service, whose endpoint is this forwarder on the bridge
address. TLS passes through untouched (the API server's certificate names the Service IP).

    python -m mlkube.devcluster.tcpforward LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT [TAG]

TAG is ignored; the launcher passes its workdir so `dev down` can recognise the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, *listen)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run(serve((argv[0], int(argv[1])), (argv[2], int(argv[3]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
