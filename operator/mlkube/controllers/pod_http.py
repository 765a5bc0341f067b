"""The operator's only way to talk to pods: Ready-pod addresses, bounded GET/PUT, a thread pool.

Drift summaries and router config hashes come straight from pod IPs (and router configs are
pushed to them). Every request goes through `get_from_pods` or `put_to_pods`, which keep only
the addresses the operator's pod networks allow (`builders.operator_config.contactable_pods`)
themselves, so no caller can forget the check: a
dev cluster whose pods are fake (kwok) hands out addresses that exist nowhere, and polling
them would send traffic off the machine. Without a configuration only loopback is contacted.
Each answer is read up to a byte cap with a timeout; a failure is an answer with an error,
never an exception: one slow pod costs one missing observation, not the caller's pass.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from mlkube.builders.operator_config import (
    ENV_POD_NETWORKS,
    LOOPBACK_NETWORKS,
    OperatorConfig,
    contactable_pods,
)
from mlkube.storage.bounded import read_stream_bounded

MAX_POLL_THREADS: Final = 16
# Used when a caller passes no configuration: this machine only.
LOOPBACK_ONLY: Final = OperatorConfig(pod_networks=LOOPBACK_NETWORKS)


@dataclass(frozen=True)
class PodReply:
    """One pod's answer: the HTTP status and body, or why there is none."""

    host: str
    status: int | None = None
    body: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


def ready_pod_ips(pods: Iterable[Mapping[str, Any]], container: str | None = None) -> list[str]:
    """IPs of Running, Ready, not terminating pods (running `container`, when given), sorted
    and unique."""
    ips = set()
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        has_container = container is None or any(
            c.get("name") == container for c in spec.get("containers") or []
        )
        ip = status.get("podIP")
        running = status.get("phase") == "Running"
        if ip and running and ready and has_container and not meta.get("deletionTimestamp"):
            ips.add(str(ip))
    return sorted(ips)


def allowed_hosts(hosts: list[str], config: OperatorConfig | None) -> list[str]:
    return contactable_pods(hosts, config if config is not None else LOOPBACK_ONLY)


def _request(
    host: str, port: int, path: str, timeout: float, max_bytes: int, what: str,
    method: str = "GET", body: bytes | None = None, headers: Mapping[str, str] | None = None,
) -> PodReply:  # fmt: skip
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        sent = {"Accept": "application/json", **(headers or {})}
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        body = read_stream_bounded(response, max_bytes, what)
    except (OSError, http.client.HTTPException) as err:
        return PodReply(host, error=f"{host}:{port}: {err}")
    finally:
        connection.close()
    return PodReply(host, status=response.status, body=body)


def get_from_pods(
    hosts: list[str],
    port: int,
    path: str,
    *,
    config: OperatorConfig | None,
    timeout: float,
    max_bytes: int,
    what: str,
) -> list[PodReply]:
    """GET `path` from every host, concurrently, one reply per host in the order given;
    hosts outside the pod networks are not contacted (their reply carries the reason)."""
    return _each(hosts, config, lambda host: _request(host, port, path, timeout, max_bytes, what))


def put_to_pods(
    hosts: list[str],
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    config: OperatorConfig | None,
    timeout: float,
    max_bytes: int,
    what: str,
) -> list[PodReply]:
    """PUT `body` to `path` of every host, like `get_from_pods` (same network rule)."""
    sent = {"Content-Type": "application/json", **headers}

    def one(host: str) -> PodReply:
        return _request(host, port, path, timeout, max_bytes, what, "PUT", body, sent)

    return _each(hosts, config, one)


def _each(
    hosts: list[str], config: OperatorConfig | None, call: Callable[[str], PodReply]
) -> list[PodReply]:
    allowed = set(allowed_hosts(hosts, config))

    def one(host: str) -> PodReply:
        if host not in allowed:
            return PodReply(host, error=f"{host}: outside the operator's {ENV_POD_NETWORKS}")
        return call(host)

    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_POLL_THREADS, len(hosts))) as pool:
        return list(pool.map(one, hosts))
