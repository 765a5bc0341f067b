"""One HTTP POST of an event to a sink, under the operator's outbound address policy.

The operator sends to URLs that namespaced EventSinks name, from its own network position, so
it applies the artifact reader's guard (mlkube.storage.netguard, the same hooks on every hop):
link-local and cloud metadata addresses and names are always refused, loopback only in dev mode
(in a pod it is the operator itself), and any CIDRs the operator is configured to deny. Unlike
artifact stores, sinks normally ARE cluster Services, so private ranges and `.svc` names are
allowed by default. Redirects are not followed (a 3xx is a rejection): a sink answers, it does
not send the operator elsewhere. The answer's body is read up to a few KiB (lastFailure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp

from mlkube.storage.errors import ArtifactLocationRefused
from mlkube.storage.netguard import guarded_session
from mlkube.storage.policy import FetchPolicy

MAX_ANSWER_BYTES: Final = 4096


def sink_policy(*, allow_loopback: bool, denied_networks: tuple[str, ...] = ()) -> FetchPolicy:
    """The outbound policy for event sinks (see the module docstring); `allow_loopback` is the
    operator's dev mode (MLKUBE_ALLOW_FILE_ARTIFACTS)."""
    return FetchPolicy(
        allow_local=allow_loopback,
        guard_network=True,
        internal_networks=denied_networks,
        internal_domains=(),
    )


@dataclass(frozen=True)
class Answer:
    """The sink's answer: a status (None: none came) with Retry-After and a short message."""

    status: int | None
    retry_after: str | None = None
    message: str = ""
    refused: bool = False  # the address policy refused the URL: never retried


def new_session(policy: FetchPolicy) -> aiohttp.ClientSession:
    """One session per engine; each request carries its sink's timeout."""
    return guarded_session(
        policy,
        timeout=aiohttp.ClientTimeout(total=None),
    )


async def post(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float,
) -> Answer:
    """POST once; never raises for network trouble (it is an Answer without a status)."""
    try:
        async with session.post(
            url,
            data=body,
            headers=dict(headers),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = ""
            if not 200 <= response.status < 300:
                raw = await response.content.read(MAX_ANSWER_BYTES)
                text = raw.decode("utf-8", "replace").strip()
            return Answer(
                response.status,
                response.headers.get("Retry-After"),
                f"HTTP {response.status} {response.reason or ''}".strip()
                + (f": {text[:200]}" if text else ""),
            )
    except ArtifactLocationRefused as err:
        return Answer(None, message=str(err).replace("fetch", "send to"), refused=True)
    except TimeoutError:
        return Answer(None, message=f"no answer within {timeout:g}s")
    except (aiohttp.ClientError, OSError) as err:
        refused = isinstance(err.__cause__, ArtifactLocationRefused)
        return Answer(None, message=f"{type(err).__name__}: {err}", refused=refused)
    except asyncio.CancelledError:
        raise
