"""Ask each Ready router replica which config file it serves (`GET /-/config` -> its sha256).

The operator writes the router ConfigMap; the kubelet swaps the mounted file up to a minute
later and each router reloads on its own. Comparing these answers with the hash of what was
written (`builders.endpoint_router.router_config_hash`) through
`reconcile.router_config.traffic_applied` tells when a traffic split is really applied. Every
failure is an observation of None (that replica is not known to serve the new split), never
an exception: one slow pod costs a later "applied", not the reconcile.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from mlkube.api.common import bound_message
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router import router_config_hash
from mlkube.builders.names import COMPONENT_ROUTER, EndpointRef, pod_selector, selector_string
from mlkube.builders.operator_config import OperatorConfig, contactable_pods
from mlkube.contract import ROUTER_CONFIG_STATE_PATH, ROUTER_HTTP_PORT
from mlkube.controllers.kube import Kube
from mlkube.reconcile.router_config import RouterState, TrafficVerdict, verdict_from_states
from mlkube.storage.bounded import read_stream_bounded

MAX_STATE_BYTES: Final = 64 * 1024  # {"loaded", "hash", "endpoint"}: tiny unless broken
MAX_POLL_THREADS: Final = 8


def ready_pod_ips(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """IPs of Running, Ready, not terminating pods (sorted, unique)."""
    ips = set()
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        terminating = (pod.get("metadata") or {}).get("deletionTimestamp")
        if status.get("phase") == "Running" and ready and not terminating and status.get("podIP"):
            ips.add(str(status["podIP"]))
    return sorted(ips)


def fetch_config_state(
    host: str, port: int = ROUTER_HTTP_PORT, timeout: float = 2.0
) -> RouterState:
    """What one router replica serves, and the error of a config it refused (if any)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", ROUTER_CONFIG_STATE_PATH)
        response = connection.getresponse()
        body = read_stream_bounded(response, MAX_STATE_BYTES, "the router config state")
        state = json.loads(body) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return RouterState(None)
    finally:
        connection.close()
    if not isinstance(state, dict):
        return RouterState(None)
    error = state.get("error")
    refused = bound_message(str(error), 512) if error else None
    value = state.get("hash")
    loaded = state.get("loaded") and isinstance(value, str) and value.startswith("sha256:")
    return RouterState(value if loaded else None, refused)


def fetch_config_hash(host: str, port: int = ROUTER_HTTP_PORT, timeout: float = 2.0) -> str | None:
    """The hash one router replica serves from, or None when it cannot say."""
    return fetch_config_state(host, port, timeout).hash


def router_config_states(
    hosts: list[str], port: int = ROUTER_HTTP_PORT, timeout: float = 2.0
) -> list[RouterState]:
    """`fetch_config_state` of every host, concurrently, in the order given."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_POLL_THREADS, len(hosts))) as pool:
        return list(pool.map(lambda host: fetch_config_state(host, port, timeout), hosts))


def router_config_hashes(
    hosts: list[str], port: int = ROUTER_HTTP_PORT, timeout: float = 2.0
) -> list[str | None]:
    """`fetch_config_hash` of every host, concurrently, in the order given."""
    return [state.hash for state in router_config_states(hosts, port, timeout)]


def verify_traffic(
    kube: Kube, owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> TrafficVerdict:
    """Ask the endpoint's Ready router replicas (those inside the operator's pod networks)
    whether they serve the config the operator writes for `spec`."""
    selector = selector_string(pod_selector(owner.name, COMPONENT_ROUTER))
    ready = ready_pod_ips(kube.list("v1", "Pod", owner.namespace, label_selector=selector))
    hosts = contactable_pods(ready, config)
    states = router_config_states(hosts, ROUTER_HTTP_PORT, config.drift_poll_timeout)
    return verdict_from_states(router_config_hash(owner, spec, config), len(ready), states)
