"""Ask each Ready router replica which config file it serves (`GET /-/config` -> its sha256).

The operator writes the router ConfigMap; the kubelet swaps the mounted file up to a minute
later and each router reloads on its own. Comparing these answers with the hash of what was
written (`builders.endpoint_router.router_config_hash`) through
`reconcile.router_config.traffic_applied` tells when a traffic split is really applied. Every
failure is an observation of None (that replica is not known to serve the new split), never
an exception: one slow pod costs a later "applied", not the reconcile. Requests go through
`controllers.pod_http`, which keeps to the operator's pod networks (loopback only without a
configuration). Replicas that do not serve the written config yet get it pushed
(`controllers.router_push`), so a verdict usually finds it applied at once.
"""

from __future__ import annotations

import json
import time
from typing import Final

from mlkube.api.common import bound_message
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.names import COMPONENT_ROUTER, EndpointRef, pod_selector, selector_string
from mlkube.builders.operator_config import OperatorConfig, contactable_pods
from mlkube.contract import ROUTER_CONFIG_STATE_PATH, ROUTER_HTTP_PORT
from mlkube.controllers.kube import Kube
from mlkube.controllers.pod_http import PodReply, get_from_pods, ready_pod_ips
from mlkube.controllers.router_push import RouterConfigPlan, plan_router_config, push_where_behind
from mlkube.reconcile.router_config import RouterState, TrafficVerdict, verdict_from_states

MAX_STATE_BYTES: Final = 64 * 1024  # {"loaded", "hash", "endpoint"}: tiny unless broken

__all__ = [
    "fetch_config_hash", "fetch_config_state", "ready_pod_ips", "router_config_hashes",
    "router_config_states", "verify_traffic",
]  # fmt: skip


def _router_state(reply: PodReply) -> RouterState:
    try:
        state = json.loads(reply.body) if reply.ok else None
    except ValueError:
        return RouterState(None)
    if not isinstance(state, dict):
        return RouterState(None)
    error = state.get("error")
    refused = bound_message(str(error), 512) if error else None
    value = state.get("hash")
    loaded = state.get("loaded") and isinstance(value, str) and value.startswith("sha256:")
    return RouterState(value if loaded else None, refused)


def fetch_config_state(
    host: str, port: int = ROUTER_HTTP_PORT, timeout: float = 2.0,
    config: OperatorConfig | None = None,
) -> RouterState:  # fmt: skip
    """What one router replica serves, and the error of a config it refused (if any)."""
    return router_config_states([host], port, timeout, config)[0]


def fetch_config_hash(
    host: str, port: int = ROUTER_HTTP_PORT, timeout: float = 2.0,
    config: OperatorConfig | None = None,
) -> str | None:  # fmt: skip
    """The hash one router replica serves from, or None when it cannot say."""
    return fetch_config_state(host, port, timeout, config).hash


def router_config_states(
    hosts: list[str], port: int = ROUTER_HTTP_PORT, timeout: float = 2.0,
    config: OperatorConfig | None = None,
) -> list[RouterState]:  # fmt: skip
    """`fetch_config_state` of every host, concurrently, in the order given (hosts outside
    the pod networks of `config` are not asked: RouterState(None))."""
    replies = get_from_pods(
        hosts, port, ROUTER_CONFIG_STATE_PATH, config=config, timeout=timeout,
        max_bytes=MAX_STATE_BYTES, what="the router config state",
    )  # fmt: skip
    return [_router_state(reply) for reply in replies]


def router_config_hashes(
    hosts: list[str], port: int = ROUTER_HTTP_PORT, timeout: float = 2.0,
    config: OperatorConfig | None = None,
) -> list[str | None]:  # fmt: skip
    """`fetch_config_hash` of every host, concurrently, in the order given."""
    return [state.hash for state in router_config_states(hosts, port, timeout, config)]


def verify_traffic(
    kube: Kube,
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    config: OperatorConfig,
    plan: RouterConfigPlan | None = None,
) -> TrafficVerdict:
    """Ask the endpoint's Ready router replicas (those inside the operator's pod networks)
    whether they serve the config the operator writes for `spec` (`plan`: that config, when
    the caller just wrote it), pushing it to those that do not when the ConfigMap holds it."""
    if plan is None:
        plan = plan_router_config(kube, owner, spec, config, time.time())
    selector = selector_string(pod_selector(owner.name, COMPONENT_ROUTER))
    ready = ready_pod_ips(kube.list("v1", "Pod", owner.namespace, label_selector=selector))
    hosts = contactable_pods(ready, config)
    states = router_config_states(hosts, ROUTER_HTTP_PORT, config.drift_poll_timeout, config)
    states = push_where_behind(kube, owner, plan, hosts, states, config)
    return verdict_from_states(plan.hash, len(ready), states)
