"""OnlineEndpoint under stress: an operator SIGKILLed mid-reconcile, a namespace that enforces
the restricted Pod Security profile, and API keys that survive reconciles."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.names import deployment_name, keys_secret_name, router_name
from mlkube.contract import API_VERSION
from mlkube.k8s import ApiError, Kube
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.operator import OPERATOR_KUBECONFIG_ENV, run_operator
from support.waiting import wait_for

EP = "credit"


def start_operator_process(namespace: str) -> subprocess.Popen[bytes]:
    """The operator as a separate process, so it can really be SIGKILLed."""
    argv = [sys.executable, "-m", "kopf", "run", "-m", "mlkube.handlers.main", "--standalone",
            "--namespace", namespace]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": os.environ[OPERATOR_KUBECONFIG_ENV]}
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def names(kube: Kube, api_version: str, kind: str, namespace: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in kube.list(api_version, kind, namespace))


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
    proc = start_operator_process(namespace)
    try:
        kube.create(endpoint_object(EP, namespace, blue_green_spec()))
        # The ConfigMap is the first child applied: kill as soon as it exists.
        wait_for(
            lambda: (
                proc.poll() is None
                and kube.get("v1", "ConfigMap", router_name(EP), namespace) is not None
            ),
            timeout=30,
            interval=0.005,
            what="first child applied by the operator process",
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    killed_at = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {}
    services_at_kill = names(kube, "v1", "Service", namespace)
    # Partial: the status of this generation was not written before the kill (what is there is
    # the CRD's default, generation 0).
    observed = (killed_at.get("status") or {}).get("observedGeneration")
    assert observed == 0, services_at_kill

    with run_operator(namespace):
        wait_endpoint_ready(kube, namespace, EP)
        assert names(kube, "apps/v1", "Deployment", namespace) == [
            deployment_name(EP, "blue"),
            deployment_name(EP, "green"),
            router_name(EP),
        ]
        assert names(kube, "v1", "Service", namespace) == [
            EP,
            deployment_name(EP, "blue"),
            deployment_name(EP, "green"),
        ]
        assert [n for n in names(kube, "v1", "ConfigMap", namespace) if n.startswith(EP)] == [
            router_name(EP)
        ]
        assert names(kube, "policy/v1", "PodDisruptionBudget", namespace) == [
            deployment_name(EP, "blue"),
            router_name(EP),
        ]
        # One ReplicaSet per Deployment: no template was applied twice with a difference.
        assert len(kube.list("apps/v1", "ReplicaSet", namespace)) == 3
        pods = kube.list("v1", "Pod", namespace)
        assert len(pods) == 2 + 1 + 2  # blue, green, router
        endpoint = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace)
        assert endpoint is not None
        assert endpoint["metadata"]["uid"] == killed_at["metadata"]["uid"]


def _pod(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/x:1"}]},
    }


def test_restricted_namespace_admits_every_pod_and_keys_are_kept(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    labels = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}  # fmt: skip
    kube.patch("v1", "Namespace", namespace, {"metadata": {"labels": labels}})
    with pytest.raises(ApiError) as refused:  # the profile is really enforced here
        kube.create(_pod(namespace))
    assert refused.value.status == 403
    assert "restricted" in str(refused.value)

    spec = blue_green_spec(auth={"mode": "key"})
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
        kube.create(endpoint_object(EP, namespace, spec))
        wait_endpoint_ready(kube, namespace, EP)
        pods = kube.list("v1", "Pod", namespace)
        assert len(pods) == 5
        assert all(p["status"].get("phase") == "Running" for p in pods)
        failed = [e for e in kube.list("v1", "Event", namespace) if e["reason"] == "FailedCreate"]
        assert failed == []

        secret = kube.get("v1", "Secret", keys_secret_name(EP), namespace)
        assert secret is not None
        (key,) = base64.b64decode(secret["data"]["keys"]).decode().split()
        assert len(key) >= 40
        router = kube.get("apps/v1", "Deployment", router_name(EP), namespace)
        assert router is not None
        volumes = router["spec"]["template"]["spec"]["volumes"]
        assert {"secretName": keys_secret_name(EP), "defaultMode": 0o440} in [
            v.get("secret") for v in volumes
        ]

        patch = {"spec": {"traffic": {"blue": 40, "green": 60}}}
        kube.patch(API_VERSION, "OnlineEndpoint", EP, patch, namespace)
        wait_for(
            lambda: (
                (kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {})
                .get("status", {})
                .get("traffic")
                == {"blue": 40, "green": 60}
            ),
            timeout=10,
            interval=0.05,
            what="traffic applied",
        )
    # While the operator is down a child disappears; the restarted operator's resume pass must
    # bring it back, and must keep the key (not mint a new one).
    kube.delete("v1", "ConfigMap", router_name(EP), namespace)
    with run_operator(namespace):
        wait_for(
            lambda: kube.get("v1", "ConfigMap", router_name(EP), namespace),
            timeout=10,
            interval=0.05,
            what="router ConfigMap restored on resume",
        )
        again = kube.get("v1", "Secret", keys_secret_name(EP), namespace)
        assert again is not None
        assert base64.b64decode(again["data"]["keys"]).decode().split() == [key]
