"""Push the written router config to the routers that do not serve it yet (docs/rollouts.md §6).

The ConfigMap stays the source of truth (what a restarted router loads, what the kubelet swaps
in within about a minute); the push only makes a change take effect in milliseconds. So the
operator pushes only bytes the ConfigMap already holds (`RouterConfigPlan.written`), only to
Ready replicas that answered a different hash, and a failed push costs nothing but time: it is
logged and counted (`PUSH_RESULTS`, exported by `handlers.metrics`), never raised. A 200
answer carries the hash the replica now serves, so the traffic verdict needs no second poll.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router import build_router_config, config_text_hash
from mlkube.builders.endpoint_router import render_router_config as render
from mlkube.builders.endpoint_router_push import read_push_key, sign_config
from mlkube.builders.names import EndpointRef, push_secret_name, router_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import (
    HEADER_CONFIG_SIGNATURE,
    ROUTER_CONFIG_FILE,
    ROUTER_CONFIG_STATE_PATH,
    ROUTER_HTTP_PORT,
)
from mlkube.controllers.endpoint_ownership import is_ours
from mlkube.controllers.kube import Kube
from mlkube.controllers.pod_http import PodReply, put_to_pods
from mlkube.reconcile.router_config import RouterState
from mlkube.reconcile.router_revision import derive_revision

log = logging.getLogger(__name__)

MAX_PUSH_REPLY_BYTES: Final = 64 * 1024
# Results of every push since the operator started: ok, forbidden, conflict, invalid (the
# router's answers), error (no answer), no_key (the push Secret is missing or empty).
PUSH_RESULTS: Final[collections.Counter[str]] = collections.Counter()
_RESULTS_LOCK: Final = threading.Lock()
_RESULT_OF_STATUS: Final = {200: "ok", 400: "invalid", 403: "forbidden", 409: "conflict"}


@dataclass(frozen=True)
class RouterConfigPlan:
    """The router config file for a spec: its text and hash, its revision, and whether the
    ConfigMap holds exactly this text now (only then may it be pushed)."""

    text: str
    hash: str
    revision: int
    written: bool

    def as_written(self) -> RouterConfigPlan:
        return replace(self, written=True)


def plan_router_config(
    kube: Kube, owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig, now: float
) -> RouterConfigPlan:
    """The config file to write for `spec`, its revision derived from the live ConfigMap
    (`reconcile.router_revision`); `now` is the Unix time (a new ConfigMap's revision)."""
    live = kube.get("v1", "ConfigMap", router_name(owner.name), owner.namespace)
    existing = ((live or {}).get("data") or {}).get(ROUTER_CONFIG_FILE)
    revision = derive_revision(existing, build_router_config(owner, spec, config, 0), now)
    text = render(build_router_config(owner, spec, config, revision))
    return RouterConfigPlan(text, config_text_hash(text), revision, existing == text)


def count(result: str, n: int = 1) -> None:
    with _RESULTS_LOCK:
        PUSH_RESULTS[result] += n


def _state(reply: PodReply) -> RouterState | None:
    """What a 200 push answer says the replica serves now (None: ask it again later)."""
    if not reply.ok:
        return None
    try:
        body: Any = json.loads(reply.body)
    except ValueError:
        return None
    value = body.get("hash") if isinstance(body, dict) else None
    return RouterState(value) if isinstance(value, str) and value.startswith("sha256:") else None


def push_config(
    kube: Kube,
    owner: EndpointRef,
    plan: RouterConfigPlan,
    hosts: list[str],
    config: OperatorConfig,
    port: int = ROUTER_HTTP_PORT,
) -> dict[str, RouterState]:
    """PUT the written config to `hosts`; the state of each replica that took it."""
    if not hosts or not plan.written:
        return {}
    secret = kube.get("v1", "Secret", push_secret_name(owner.name), owner.namespace)
    # Only a Secret this endpoint controls: whoever put another one there holds its key.
    key = read_push_key(secret) if secret is not None and is_ours(secret, owner) else None
    if key is None:
        count("no_key", len(hosts))
        log.warning("router config push for %s/%s skipped: no push key", owner.namespace,
                    owner.name)  # fmt: skip
        return {}
    body = plan.text.encode()
    replies = put_to_pods(
        hosts, port, ROUTER_CONFIG_STATE_PATH, body,
        {HEADER_CONFIG_SIGNATURE: sign_config(key, body)},
        config=config, timeout=config.drift_poll_timeout, max_bytes=MAX_PUSH_REPLY_BYTES,
        what="the router's push answer",
    )  # fmt: skip
    taken: dict[str, RouterState] = {}
    for reply in replies:
        result = "error" if reply.status is None else _RESULT_OF_STATUS.get(reply.status, "error")
        count(result)
        state = _state(reply) if result == "ok" else None
        if state is not None:
            taken[reply.host] = state
        else:
            log.warning(
                "router config push of revision %d to %s (%s/%s) failed: %s",
                plan.revision, reply.host, owner.namespace, owner.name,
                reply.error or f"HTTP {reply.status} {reply.body[:300]!r}",
            )  # fmt: skip
    return taken


def push_where_behind(
    kube: Kube,
    owner: EndpointRef,
    plan: RouterConfigPlan,
    hosts: list[str],
    states: list[RouterState],
    config: OperatorConfig,
) -> list[RouterState]:
    """`states` (one per host) with the replicas that did not serve `plan` pushed to and,
    where a push was taken, their new state."""
    behind = [host for host, state in zip(hosts, states, strict=True) if state.hash != plan.hash]
    taken: Mapping[str, RouterState] = push_config(kube, owner, plan, behind, config)
    return [taken.get(host, state) for host, state in zip(hosts, states, strict=True)]
