"""The traffic fast path: a spec change of traffic or mirror only writes the router ConfigMap
and the status, not the whole endpoint (issue 15; docs/architecture.md, decision 24).

The full pass reads the Models, environments, keys and every child, applies them all and
prunes: about 23 requests per endpoint where a split change needs one ConfigMap apply. Here the
endpoint is read afresh (level-based: the live spec is compared with the last one handled, so
of two racing changes the later one is written, under the same per-endpoint lock as every
pass), the ConfigMap is built by the full pass's builders at the revision it would derive, and
applied through the same `write_children` (same field manager, uid-guarded, skipped when
equal). When the precondition does not hold (`builders.endpoint_traffic.decide_traffic_change`),
or the ConfigMap is missing or not ours, the full pass runs instead.

The status (the workloads, the routers' verdict and the config push, the Events) comes from the
full pass's `observe_and_write_status`, in `write_traffic_status`, which the Kopf layer runs
after the change in fewer threads: the ConfigMap is what a change is for, and at 1,000
endpoints changed at once the status step (two LISTs, a patch and an Event of the six
requests on the handler's path) held the handler threads while the later ConfigMaps waited
(docs/benchmarks/operator-scale.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import endpoint_url
from mlkube.builders.endpoint_traffic import build_traffic_configmap, decide_traffic_change
from mlkube.builders.names import EndpointRef, router_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import KIND_ONLINE_ENDPOINT
from mlkube.controllers import endpoint as full
from mlkube.controllers.endpoint import (
    Outcome,
    get_endpoint,
    observe_and_write_status,
    running_spec,
)
from mlkube.controllers.endpoint_ownership import is_ours, write_children
from mlkube.controllers.kube import Kube
from mlkube.controllers.pass_reads import PassReads
from mlkube.controllers.router_push import plan_router_config
from mlkube.reconcile.router_config import RELOADING

log = logging.getLogger(__name__)


def reconcile_change(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    name: str,
    now: str,
    old_spec: Mapping[str, Any] | None,
) -> Outcome:
    """A spec change: the fast path when it is traffic-only, else the full pass."""
    outcome = reconcile_traffic(kube, config, namespace, name, now, old_spec)
    return outcome if outcome is not None else full.reconcile(kube, config, namespace, name, now)


def reconcile_traffic(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    name: str,
    now: str,
    old_spec: Mapping[str, Any] | None,
) -> Outcome | None:
    """Apply a traffic-only change (`old_spec`: the spec last handled); None when the full
    pass must run (its own reads start afresh: nothing read here is reused)."""
    if old_spec is None:
        return None
    kube = PassReads(kube)
    obj = get_endpoint(kube, namespace, name)
    if obj is None:
        return Outcome()  # gone: nothing to do, as in the full pass
    decision = decide_traffic_change(old_spec, obj.get("spec") or {}, obj.get("status"))
    if not decision.fast:
        log.info("OnlineEndpoint %s/%s: full pass (%s)", namespace, name, decision.reason)
        return None
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None  # the full pass reports it
    meta = obj["metadata"]
    owner = EndpointRef(name=name, namespace=namespace, uid=str(meta["uid"]))
    live = kube.get("v1", "ConfigMap", router_name(name), namespace)
    if live is None or not is_ours(live, owner):
        return None  # recreated or taken: the full pass creates it or reports the conflict
    running = running_spec(obj, spec, now)
    plan = plan_router_config(kube, owner, running, config, time.time())  # reads `live` again
    child = build_traffic_configmap(owner, running, config, plan.revision)
    if write_children(kube, owner, [child]):
        return None
    return Outcome(status_for=(owner.uid, int(meta.get("generation", 1))))


def write_traffic_status(
    kube: Kube, config: OperatorConfig, namespace: str, name: str, now: str, generation: int,
    uid: str | None = None,
) -> Outcome:  # fmt: skip
    """The status after a fast path wrote `generation`'s router config (of the endpoint
    `uid`): what the full pass would write (the routers asked, and pushed the config where
    behind). Nothing when the endpoint is gone, replaced or past `generation` (that
    generation's own pass writes the status)."""
    kube = PassReads(kube)
    obj = get_endpoint(kube, namespace, name)
    meta = (obj or {}).get("metadata") or {}
    moved = int(meta.get("generation", 1)) != generation
    if obj is None or moved or (uid is not None and meta.get("uid") != uid):
        return Outcome()
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return Outcome()  # a spec change re-runs the handler: its pass reports it
    owner = EndpointRef(name=name, namespace=namespace, uid=str(meta["uid"]))
    running = running_spec(obj, spec, now)
    verdict, events = observe_and_write_status(
        kube, config, obj, spec, owner, endpoint_url(owner, spec, config), now, running
    )
    subject = {"apiVersion": obj["apiVersion"], "kind": KIND_ONLINE_ENDPOINT, "metadata": meta}
    if verdict is not None and verdict.reason == RELOADING:
        return Outcome(events=events, subject=subject, retry_message=verdict.message)
    return Outcome(events=events, subject=subject)
