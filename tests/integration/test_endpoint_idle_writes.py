"""An operator with nothing to do writes nothing (issue 15), and still repairs what was broken.

The API server's audit log (the session cluster records every request of the operator's
identity) is the witness: it counts Kopf's own requests too, which the operator's client
cannot see. Forced resyncs (MLKUBE_RESYNC_SECONDS), drift polls and a restart of the operator
over Ready endpoints (a router with key auth and a mirror; a single deployment with drift on)
must cost reads only; a child deleted or edited by hand is still put back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from kopf.testing import KopfRunner

from mlkube.builders.names import deployment_name, router_name
from mlkube.devcluster import Cluster
from mlkube.devcluster.audit import AuditLog, Request, writes
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.handlers.config import operator_config
from mlkube.k8s import Kube
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.operator import run_operator
from support.waiting import wait_for

RESYNC = 2.0  # seconds: several resyncs fit in a short quiet window
QUIET = 3 * RESYNC + 1  # a window without writes spans at least two resyncs of every endpoint
ROUTED = "routed"  # router, key auth, a mirror
SINGLE = "single"  # one deployment, no router, drift polled every second


@contextlib.contextmanager
def fast_resync_operator(namespace: str) -> Iterator[KopfRunner]:
    """The in-process operator with a short resync (the config is read once per process)."""
    operator_config.cache_clear()
    try:
        env = {"MLKUBE_RESYNC_SECONDS": str(RESYNC), "MLKUBE_DRIFT_POLL_INTERVAL_SECONDS": "1"}
        with run_operator(namespace, env=env) as runner:
            yield runner
    finally:
        operator_config.cache_clear()


def create_endpoints(kube: Kube, namespace: str, tmp: Path) -> None:
    create_ready_models(kube, namespace, tmp)
    routed = blue_green_spec(
        traffic={"blue": 100, "green": 0}, mirror={"green": 10}, auth={"mode": "key"}
    )
    # No baseline on the Model: every drift poll finds the same DriftBaselineMissing.
    single = {
        "deployments": [{"name": "main", "model": "credit-risk-v4", "drift": {"enabled": True}}]
    }
    kube.create(endpoint_object(ROUTED, namespace, routed))
    kube.create(endpoint_object(SINGLE, namespace, single))
    for name in (ROUTED, SINGLE):
        wait_endpoint_ready(kube, namespace, name)


def quiet_window(audit: AuditLog, namespace: str, timeout: float = 60) -> list[Request]:
    """Wait for a QUIET-second window in which the operator wrote nothing in `namespace`;
    returns that window's requests. Times out (with the last window's writes) if the operator
    keeps writing: a resync that rewrites something would write in every window."""
    last: list[Request] = []

    def window() -> list[Request] | None:
        nonlocal last
        audit.mark()
        time.sleep(QUIET)
        requests = [r for r in audit.since_mark(OPERATOR_USER) if r.namespace == namespace]
        last = writes(requests)
        return requests if not last else None

    try:
        result: list[Request] = wait_for(window, timeout=timeout, interval=0, what="no writes")
    except AssertionError as err:
        raise AssertionError(f"operator keeps writing: {describe(last)}") from err
    return result


def describe(requests: list[Request]) -> list[str]:
    return [f"{r.verb} {r.resource} {r.name} ({r.code})" for r in requests]


def endpoint_reads(requests: list[Request], name: str) -> int:
    return sum(1 for r in requests if r.resource == "onlineendpoints" and r.name == name)


def test_resync_and_restart_of_ready_endpoints_write_nothing(
    kube: Kube, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    audit = AuditLog(cluster.audit_log)
    with fast_resync_operator(namespace):
        create_endpoints(kube, namespace, tmp_path)
        quiet_window(audit, namespace)  # pods starting, status settling
        # Forced resyncs over settled endpoints: each read its endpoint, and nothing was written.
        window = quiet_window(audit, namespace, timeout=QUIET + 1)
        for name in (ROUTED, SINGLE):
            assert endpoint_reads(window, name) >= 2, describe(window)
        assert {r.resource for r in window} >= {"deployments", "models"}, describe(window)
        # An idle pass lists its Deployments once (its status reads that list): as many
        # Deployment LISTs as Service LISTs (one per pass), give or take the window's edges.
        lists = [r.resource for r in window if r.verb == "list"]
        passes = lists.count("services")
        assert passes >= 2 and lists.count("deployments") <= passes + 2, describe(window)

    audit.mark()
    with fast_resync_operator(namespace):
        # Every endpoint resumed (its reconcile reads it and applies nothing), no write at all:
        # no Kopf annotation, no status, no child.
        def resumed() -> bool:
            requests = audit.since_mark(OPERATOR_USER)
            return all(endpoint_reads(requests, n) for n in (ROUTED, SINGLE))

        wait_for(resumed, timeout=30, interval=0.2, what="both endpoints resumed")
        time.sleep(QUIET)
        restart = audit.since_mark(OPERATOR_USER)
    assert writes(restart) == [], describe(writes(restart))
    for name in (ROUTED, SINGLE):
        assert wait_endpoint_ready(kube, namespace, name)


def test_children_deleted_or_edited_by_hand_are_still_repaired(
    kube: Kube, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    audit = AuditLog(cluster.audit_log)
    with fast_resync_operator(namespace):
        create_endpoints(kube, namespace, tmp_path)
        quiet_window(audit, namespace)
        blue = deployment_name(ROUTED, "blue")
        deleted = kube.get("apps/v1", "Deployment", blue, namespace)
        assert deleted is not None
        kube.delete("apps/v1", "Deployment", blue, namespace)

        def recreated() -> bool:
            again = kube.get("apps/v1", "Deployment", blue, namespace)
            return again is not None and again["metadata"]["uid"] != deleted["metadata"]["uid"]

        wait_for(recreated, timeout=30, interval=0.1, what="deleted Deployment recreated")

        # Edited by another manager: a value changed, a label of ours removed, data rewritten.
        main = deployment_name(SINGLE, "main")
        live = kube.get("apps/v1", "Deployment", main, namespace)
        assert live is not None
        image = live["spec"]["template"]["spec"]["containers"][0]["image"]
        labels = dict(live["metadata"]["labels"])
        edit = {"metadata": {"labels": {next(iter(labels)): None}},
                "spec": {"template": {"spec": {"containers": [
                    {"name": live["spec"]["template"]["spec"]["containers"][0]["name"],
                     "image": "example.invalid/hacked:1"}]}}}}  # fmt: skip
        kube.patch("apps/v1", "Deployment", main, edit, namespace)
        config = kube.get("v1", "ConfigMap", router_name(ROUTED), namespace)
        assert config is not None
        key = next(iter(config["data"]))
        kube.patch("v1", "ConfigMap", router_name(ROUTED), {"data": {key: "edited"}}, namespace)

        def repaired() -> bool:
            dep = kube.get("apps/v1", "Deployment", main, namespace) or {}
            cm = kube.get("v1", "ConfigMap", router_name(ROUTED), namespace) or {}
            containers = dep["spec"]["template"]["spec"]["containers"]
            return (
                containers[0]["image"] == image
                and dep["metadata"]["labels"] == labels
                and cm["data"][key] != "edited"
            )

        wait_for(repaired, timeout=30, interval=0.2, what="hand edits repaired by the resync")
        for name in (ROUTED, SINGLE):
            wait_endpoint_ready(kube, namespace, name)
        quiet_window(audit, namespace)  # and once repaired, idle again


def test_a_restart_repairs_from_shared_lists_what_changed_while_the_operator_was_away(
    kube: Kube, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """At a restart the resume passes read their children from LISTs shared by a batch of
    endpoints (controllers/resume_reads.py): a Service deleted and a router ConfigMap edited
    while no operator ran are put back by those passes alone (nothing else fires for them:
    no Deployment changed, the resync is minutes away), and the restart lists each child
    kind at most once per endpoint."""
    from mlkube.handlers.endpoint import RESUMES

    audit = AuditLog(cluster.audit_log)
    operator_config.cache_clear()
    with run_operator(namespace):
        create_endpoints(kube, namespace, tmp_path)
        quiet_window(audit, namespace)
    service = deployment_name(SINGLE, "main")
    assert kube.get("v1", "Service", service, namespace) is not None
    kube.delete("v1", "Service", service, namespace)
    config = kube.get("v1", "ConfigMap", router_name(ROUTED), namespace)
    assert config is not None
    key = next(iter(config["data"]))
    kube.patch("v1", "ConfigMap", router_name(ROUTED), {"data": {key: "edited"}}, namespace)
    shared = RESUMES.counts["shared"]
    audit.mark()
    with run_operator(namespace):

        def repaired() -> bool:
            cm = kube.get("v1", "ConfigMap", router_name(ROUTED), namespace) or {}
            back = kube.get("v1", "Service", service, namespace) is not None
            return back and (cm.get("data") or {}).get(key) != "edited"

        wait_for(repaired, timeout=30, interval=0.2, what="repaired by the resume passes")
        for name in (ROUTED, SINGLE):
            wait_endpoint_ready(kube, namespace, name)
        restart = [r for r in audit.since_mark(OPERATOR_USER) if r.namespace == namespace]
    assert RESUMES.counts["shared"] - shared >= 2  # both resume passes read a share
    lists = [r.resource for r in restart if r.verb == "list"]
    assert lists.count("services") <= 2, describe(restart)  # a batch, or one per endpoint
