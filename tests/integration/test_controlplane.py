"""The local control plane is a real Kubernetes: version, scheduling on kwok nodes, Jobs, GC."""

from __future__ import annotations

from typing import Any

from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.waiting import wait_for


def test_server_reports_v1_36(cluster: Cluster) -> None:
    status, version = cluster.request("GET", "/version")
    assert status == 200
    assert version["major"] == "1"
    assert version["minor"] == "36"
    assert version["gitVersion"].startswith("v1.36.")


def _deployment(name: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]},
            },
        },
    }


def test_deployment_becomes_available_and_gc_removes_pods(kube: Kube, namespace: str) -> None:
    dep = _deployment("web")
    dep["metadata"]["namespace"] = namespace
    kube.apply(dep)

    def available() -> bool:
        d = kube.get("apps/v1", "Deployment", "web", namespace) or {}
        conds = d.get("status", {}).get("conditions", [])
        return d.get("status", {}).get("availableReplicas") == 2 and any(
            c["type"] == "Available" and c["status"] == "True" for c in conds
        )

    wait_for(available, timeout=60, what="Deployment Available on kwok nodes")
    pods = kube.list("v1", "Pod", namespace, label_selector="app=web")
    assert len(pods) == 2
    assert all(p["spec"].get("nodeName", "").startswith("kwok-") for p in pods)

    kube.delete("apps/v1", "Deployment", "web", namespace)
    wait_for(
        lambda: (
            not kube.list("apps/v1", "ReplicaSet", namespace)
            and not kube.list("v1", "Pod", namespace, label_selector="app=web")
        ),
        timeout=60,
        what="garbage collection of ReplicaSets and Pods",
    )


def test_job_completes(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once", "namespace": namespace},
            "spec": {
                "completions": 2,
                "parallelism": 2,
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "example.invalid/none:1"}],
                    }
                },
            },
        }
    )

    def complete() -> bool:
        job = kube.get("batch/v1", "Job", "once", namespace) or {}
        return any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in job.get("status", {}).get("conditions", [])
        )

    wait_for(complete, timeout=60, what="Job Complete")
    assert (kube.get("batch/v1", "Job", "once", namespace) or {})["status"]["succeeded"] == 2


def test_namespace_deletion_finishes(kube: Kube, crds: list[str]) -> None:
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t-delete-me"}})
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "t-delete-me"},
            "data": {"a": "b"},
        }
    )
    kube.delete("v1", "Namespace", "t-delete-me")
    wait_for(
        lambda: kube.get("v1", "Namespace", "t-delete-me") is None,
        timeout=60,
        what="namespace deletion",
    )
