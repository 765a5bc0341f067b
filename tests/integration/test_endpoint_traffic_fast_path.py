"""A traffic-only change takes the fast path on the real API server (issue 15; decision 24):
the router ConfigMap carries the new split, the operator touches no Model and no Deployment,
the fast path costs fewer requests than a full pass, and a full pass after it writes nothing.

Witnesses: the API server's audit log (the operator's own requests, Kopf's included) for the
handler wiring, and a request-counting wrapper around the real client for the two passes.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

from mlkube.builders.names import router_name
from mlkube.builders.operator_config import parse_operator_config
from mlkube.contract import API_VERSION
from mlkube.controllers import endpoint as controller
from mlkube.controllers import endpoint_traffic
from mlkube.devcluster import Cluster
from mlkube.devcluster.audit import AuditLog, writes
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.k8s import Kube
from support.counting_kube import CountingKube
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.operator import run_operator
from support.waiting import wait_for

EP = "credit"
WRITE_VERBS = ("apply", "apply/status", "create", "patch", "patch/status", "delete")


def router_traffic(kube: Kube, namespace: str) -> dict[str, Any]:
    cm = kube.get("v1", "ConfigMap", router_name(EP), namespace) or {}
    doc = json.loads((cm.get("data") or {}).get("config.json") or "{}")
    return {"traffic": doc.get("traffic"), "mirror": doc.get("mirror")}


def set_split(
    kube: Kube, namespace: str, traffic: dict[str, int], mirror: dict[str, int | None]
) -> None:
    """A merge patch: a mirror entry set to None is removed."""
    patch = {"spec": {"traffic": traffic, "mirror": mirror}}
    kube.patch(API_VERSION, "OnlineEndpoint", EP, patch, namespace)


def applied(kube: Kube, namespace: str, traffic: dict[str, int]) -> dict[str, Any]:
    obj = wait_endpoint_ready(kube, namespace, EP)
    wait_for(
        lambda: router_traffic(kube, namespace)["traffic"] == traffic,
        timeout=20, interval=0.05, what=f"router config carries {traffic}",
    )  # fmt: skip
    return obj


def test_a_traffic_change_takes_the_fast_path_and_a_full_pass_then_writes_nothing(
    kube: Kube, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    audit = AuditLog(cluster.audit_log)
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
        kube.create(endpoint_object(EP, namespace, blue_green_spec()))
        applied(kube, namespace, {"blue": 70, "green": 30})
        time.sleep(1.0)  # the Deployments' burst of refreshes passes
        audit.mark()
        set_split(kube, namespace, {"blue": 100, "green": 0}, {"green": 20})
        obj = applied(kube, namespace, {"blue": 100, "green": 0})
        assert router_traffic(kube, namespace)["mirror"] == {"green": 20}
        assert obj["status"]["traffic"] == {"blue": 100, "green": 0}
        assert obj["status"]["mirror"] == {"green": 20}
        time.sleep(1.0)
        seen = [r for r in audit.since_mark(OPERATOR_USER) if r.namespace == namespace]
    # Through the handler: no Model, Secret or Deployment write, no Model read (full pass only).
    resources = {r.resource for r in seen}
    assert "models" not in resources and "models/status" not in resources, resources
    written = {r.resource for r in writes(seen)}
    assert "configmaps" in written, written
    assert written <= {"configmaps", "onlineendpoints", "onlineendpoints/status", "events"}

    # The two passes side by side, operator stopped: the same kind of change, counted.
    config = parse_operator_config(os.environ)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = (kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {})["spec"]
    set_split(kube, namespace, {"blue": 40, "green": 60}, {"green": None})
    fast = CountingKube(kube)
    outcome = endpoint_traffic.reconcile_traffic(fast, config, namespace, EP, now, old)
    assert outcome is not None, "the fast path refused a traffic-only change"
    assert router_traffic(kube, namespace) == {"traffic": {"blue": 40, "green": 60}, "mirror": {}}
    # The handler's part: the endpoint, the ConfigMap, its apply.
    assert fast.total() == 3 and sum(fast.total(verb) for verb in WRITE_VERBS) == 1
    assert outcome.status_for is not None
    uid, generation = outcome.status_for
    endpoint_traffic.write_traffic_status(fast, config, namespace, EP, now, generation, uid)
    assert fast.calls["get", "Model"] == 0 and fast.calls["get", "Secret"] == 0
    # The status step: the endpoint and the ConfigMap again, router pods, the Deployments
    # (the router's among them, no GET of it), the status patch; a full pass: 26 requests
    # with 0 writes, measured here.
    assert fast.calls["get", "Deployment"] == 0, fast.calls
    assert fast.calls["list", "Deployment"] == 1, fast.calls
    assert sum(fast.total(verb) for verb in WRITE_VERBS) == 2  # the ConfigMap, the status
    full = CountingKube(kube)
    controller.reconcile(full, config, namespace, EP, now)
    assert sum(full.total(verb) for verb in WRITE_VERBS) == 0, full.calls
    assert fast.total() < full.total(), (fast.calls, full.calls)
    status = (kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {})["status"]
    assert status["traffic"] == {"blue": 40, "green": 60}
