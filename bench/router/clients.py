"""Which upstream client should the router use? CPU per request of aiohttp, httpx and the pool.

Sends the same POST to bench/router/upstream.py from 16 concurrent tasks for a few seconds per
client and reports requests/s and client-process CPU microseconds per request (the number that
decides the router's throughput, since the router's CPU is the bottleneck).
Usage: python bench/router/clients.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop

from mlkube_serving._http.client import UpstreamPool, serialize_request

HERE = Path(__file__).resolve().parent
BODY = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1.0,2.0,3.0,4.0]}]}'
PATH = "/v2/models/bench/infer"
CONCURRENCY = 16


async def drive(one: Callable[[], Awaitable[int]], seconds: float) -> tuple[float, float]:
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            assert await one() == 200
            done += 1

    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return done / wall, cpu / done * 1e6


async def bench_aiohttp(url: str, seconds: float) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(url, data=BODY) as resp:
                await resp.read()
                return resp.status

        return await drive(one, seconds)


async def bench_httpx(url: str, seconds: float) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> int:
            return (await client.post(url, content=BODY)).status_code

        return await drive(one, seconds)


async def bench_pool(port: int, seconds: float) -> tuple[float, float]:
    pool = UpstreamPool("127.0.0.1", port, CONCURRENCY)
    headers = b"content-type: application/json\r\n"
    loop = asyncio.get_running_loop()

    async def one() -> int:
        data = serialize_request(b"POST", PATH.encode(), b"host: 127.0.0.1\r\n", headers, BODY)
        return (await pool.request(data, loop.time() + 10)).status

    return await drive(one, seconds)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=18941)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}{PATH}"
    server = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), str(args.port), "up"])
    try:
        time.sleep(1.5)
        print(f"client            req/s   client CPU us/req  ({CONCURRENCY} tasks, uvloop)")
        cases: list[tuple[str, Coroutine[Any, Any, tuple[float, float]]]] = [
            ("aiohttp", bench_aiohttp(url, args.seconds)),
            ("httpx", bench_httpx(url, args.seconds)),
            ("router pool", bench_pool(args.port, args.seconds)),
        ]
        for name, case in cases:
            rps, cpu_us = uvloop.run(case)
            print(f"{name:<14} {rps:>8,.0f}   {cpu_us:>8.1f}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
