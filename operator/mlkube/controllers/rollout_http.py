"""The Prometheus and web measurement providers: one bounded, guarded GET each.

The address is written by whoever writes the OnlineEndpoint, and the operator fetches it from
its own network position, so the request goes through `storage.netguard` (every hop, every
resolved address checked): link-local and cloud metadata addresses are always refused, and
loopback only in dev mode (`MLKUBE_ALLOW_FILE_ARTIFACTS`, as for artifacts). Cluster-internal
names and private addresses are allowed, unlike for artifacts: an in-cluster Prometheus
(`http://prometheus.monitoring.svc:9090`) is the point. Answers are read up to a byte cap
within the metric's timeout; no answer body is ever echoed into an error (it lands in status).
Every failure is an Error measurement, never an exception.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from mlkube.builders.operator_config import OperatorConfig
from mlkube.reconcile.rollout_measure import RawMeasurement, provider_error
from mlkube.reconcile.rollout_remote import prometheus_measure, web_measure
from mlkube.storage.errors import StorageError, storage_error_in
from mlkube.storage.netguard import guarded_session
from mlkube.storage.policy import FetchLimits, FetchPolicy

MAX_ANSWER_BYTES: Final = 1024 * 1024  # one number's worth of JSON, with room for labels
MAX_REDIRECTS: Final = 3
DEFAULT_TIMEOUT: Final = 5.0
QUERY_PATH: Final = "/api/v1/query"


def measurement_policy(config: OperatorConfig, timeout: float) -> FetchPolicy:
    """Guarded network, no internal networks or names refused, loopback in dev mode only."""
    return FetchPolicy(
        limits=FetchLimits(max_bytes=MAX_ANSWER_BYTES, timeout=timeout),
        allow_local=config.allow_file_artifacts,
        guard_network=True,
        internal_networks=(),
        internal_domains=(),
    )


def url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host"
    if parts.username or parts.password:
        return f"{parts.hostname}: credentials in the URL are not supported"
    return None


async def _get_json(
    url: str, params: dict[str, str] | None, policy: FetchPolicy, timeout: float
) -> tuple[Any, str | None]:
    where = urlsplit(url).netloc
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            guarded_session(policy, client_timeout) as session,
            session.get(
                url, params=params, max_redirects=MAX_REDIRECTS,
                headers={"Accept": "application/json"},
            ) as response,
        ):  # fmt: skip
            if not 200 <= response.status < 300:
                return None, f"{where}: HTTP {response.status}"
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    return None, f"{where}: answer larger than {MAX_ANSWER_BYTES} bytes"
                chunks.append(chunk)
            body = b"".join(chunks)
    except StorageError as err:  # the guard refused a host or an address
        return None, str(err)
    except TimeoutError:
        return None, f"{where}: no answer within {timeout:g} s"
    except aiohttp.TooManyRedirects:
        return None, f"{where}: more than {MAX_REDIRECTS} redirects"
    except (aiohttp.ClientError, OSError, ValueError) as err:
        refused = storage_error_in(err)
        if refused is not None:
            return None, str(refused)
        return None, f"{where}: {type(err).__name__}: {err}"[:300]
    try:
        return json.loads(body), None
    except ValueError:
        return None, f"{where}: the answer is not JSON"


def _run(
    url: str, params: dict[str, str] | None, policy: FetchPolicy, timeout: float
) -> tuple[Any, str | None]:
    """Blocking: loop ticks run in threads; from inside an event loop, in a fresh thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_get_json(url, params, policy, timeout))
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _get_json(url, params, policy, timeout)).result()


def prometheus_query(
    address: str, query: str, config: OperatorConfig, timeout: float = DEFAULT_TIMEOUT
) -> RawMeasurement:
    """Instant query `query` at `address` (`<address>/api/v1/query`)."""
    problem = url_problem(address)
    if problem is not None:
        return provider_error(f"prometheus address {problem}")
    if urlsplit(address).query or urlsplit(address).fragment:
        return provider_error("prometheus address must not have a query or fragment")
    url = address.rstrip("/") + QUERY_PATH
    params = {"query": query, "timeout": f"{max(timeout, 0.001):g}s"}
    doc, error = _run(url, params, measurement_policy(config, timeout), timeout)
    if error is not None:
        return provider_error(f"prometheus: {error}")
    return prometheus_measure(doc)


def web_get(
    url: str, json_path: str, config: OperatorConfig, timeout: float = DEFAULT_TIMEOUT
) -> RawMeasurement:
    """GET `url` and take the number at `json_path`."""
    problem = url_problem(url)
    if problem is not None:
        return provider_error(f"web url {problem}")
    doc, error = _run(url, None, measurement_policy(config, timeout), timeout)
    if error is not None:
        return provider_error(f"web: {error}")
    return web_measure(doc, json_path)
