"""An HTTP filesystem that refuses hosts the reader's policy forbids, on every hop.

The operator fetches URLs named in Models with its own network position, so checking the URL
once is not enough: a public name may resolve to 169.254.169.254, or redirect to a Service IP.
Two hooks inside aiohttp cover every request of a transfer, redirects included: a trace hook
checks each request's host as written (names and IP literals, which aiohttp never resolves),
and a resolver checks every address a name resolves to, right before connecting (so a DNS
answer that changes between check and use is still checked). A session-wide timeout bounds the
whole transfer, response bodies included.
"""

from __future__ import annotations

import ipaddress
import socket
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from fsspec import AbstractFileSystem

from mlkube.storage.errors import ArtifactLocationRefused
from mlkube.storage.policy import FetchPolicy


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default and refuses if any address is forbidden."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].split("%")[0])
            problem = self._policy.address_problem(address)
            if problem is not None:
                # Any forbidden address refuses the name: no falling back to a "good" one.
                raise ArtifactLocationRefused(
                    f"refusing to fetch from {host}: {address} is {problem}"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()


def _trace_config(policy: FetchPolicy) -> aiohttp.TraceConfig:
    async def on_request_start(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        url = params.url
        policy.check_host(str(url.raw_host or ""), str(url))
        if url.scheme not in ("http", "https"):
            raise ArtifactLocationRefused(f"refusing to follow {url}: not http(s)")

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    return config


def guarded_http_filesystem(policy: FetchPolicy) -> AbstractFileSystem:
    """fsspec's HTTP filesystem over a session that enforces `policy` and its timeout."""
    from fsspec.implementations.http import HTTPFileSystem

    timeout = policy.limits.timeout

    async def get_client(**kwargs: Any) -> aiohttp.ClientSession:
        connector = None
        if policy.guard_network:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), use_dns_cache=False)
        return aiohttp.ClientSession(
            connector=connector,
            trace_configs=[_trace_config(policy)] if policy.guard_network else None,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=timeout),
            **kwargs,
        )

    return HTTPFileSystem(skip_instance_cache=True, get_client=get_client)
