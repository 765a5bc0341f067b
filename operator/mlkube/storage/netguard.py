"""An HTTP filesystem that refuses hosts the reader's policy forbids, on every hop.

The operator fetches URLs named in Models with its own network position, so checking the URL
once is not enough: a public name may resolve to 169.254.169.254, or redirect to a Service IP.
Hooks inside aiohttp cover every request of a transfer, redirects included: trace hooks check
each host name as written (the URL's and every redirect's Location), the resolver refuses a name
when any of its addresses is forbidden, and the socket factory checks the very address each
socket connects to (IP literals skip the resolver; a DNS answer that changes between check and
use is still caught). A session-wide timeout bounds the whole transfer, bodies included.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Final

import aiohttp
from aiohappyeyeballs import AddrInfoType as AddrInfo
from aiohttp.abc import AbstractResolver, ResolveResult
from fsspec import AbstractFileSystem
from yarl import URL

from mlkube.storage.errors import ArtifactLocationRefused
from mlkube.storage.policy import FetchPolicy

CONNECT_TIMEOUT: Final = 30.0
READ_TIMEOUT: Final = 120.0  # seconds without a single byte


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


def _check_url(policy: FetchPolicy, url: URL) -> None:
    if url.scheme not in ("http", "https"):
        raise ArtifactLocationRefused(f"refusing to follow {url}: not http(s)")
    policy.check_host(str(url.raw_host or ""), str(url))


def _trace_config(policy: FetchPolicy) -> aiohttp.TraceConfig:
    async def on_request_start(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        _check_url(policy, params.url)

    async def on_request_redirect(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        location = params.response.headers.get("Location")
        if location:
            _check_url(policy, params.url.join(URL(location)))

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    config.on_request_redirect.append(on_request_redirect)
    return config


def _socket_factory(policy: FetchPolicy) -> Callable[[AddrInfo], socket.socket]:
    def create(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        problem = policy.address_problem(address)
        if problem is not None:
            raise ArtifactLocationRefused(f"refusing to connect to {address}: it is {problem}")
        return socket.socket(family=family, type=type_, proto=proto)

    return create


def guarded_session(
    policy: FetchPolicy, timeout: aiohttp.ClientTimeout, **kwargs: Any
) -> aiohttp.ClientSession:
    """An aiohttp session that enforces `policy` on every hop (when it guards the network)."""
    connector = None
    if policy.guard_network:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(policy),
            use_dns_cache=False,
            socket_factory=_socket_factory(policy),
        )
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[_trace_config(policy)] if policy.guard_network else None,
        timeout=timeout,
        **kwargs,
    )


def guarded_http_filesystem(policy: FetchPolicy) -> AbstractFileSystem:
    """fsspec's HTTP filesystem over a session that enforces `policy` and its timeout."""
    from fsspec.implementations.http import HTTPFileSystem

    timeout = policy.limits.timeout

    async def get_client(**kwargs: Any) -> aiohttp.ClientSession:
        return guarded_session(
            policy,
            # No total cap unless the policy sets one (large models take long), but a silent
            # peer never hangs a reader for good.
            aiohttp.ClientTimeout(
                total=timeout,
                sock_connect=min(timeout or CONNECT_TIMEOUT, CONNECT_TIMEOUT),
                sock_read=min(timeout or READ_TIMEOUT, READ_TIMEOUT),
            ),
            **kwargs,
        )

    return HTTPFileSystem(skip_instance_cache=True, get_client=get_client)
