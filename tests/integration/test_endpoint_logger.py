"""Payload logging on the real control plane with the real operator: a logger's EventSink is
waited for until it exists, then resolved into the model server's variables (its Service's
DNS URL, its mode, its signing Secret by reference); an unusable sink is reported with what to
fix; a logger naming two destinations is refused by the API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube import contract as c
from mlkube.api.endpoint import MSG_LOGGER_DESTINATION
from mlkube.builders.names import deployment_name
from mlkube.contract import API_VERSION
from mlkube.k8s import ApiError, Kube
from support.endpoints import condition, create_ready_models, endpoint_object, wait_endpoint_ready
from support.waiting import wait_for

EP = "credit"


def spec(logger: dict[str, Any]) -> dict[str, Any]:
    blue = {"name": "blue", "model": "credit-risk-v3", "logger": logger}
    return {"deployments": [blue], "traffic": {"blue": 100}}


def wait_reason(kube: Kube, namespace: str, type_: str, reason: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "OnlineEndpoint", EP, namespace)
        return obj if condition(obj, type_).get("reason") == reason else None

    return dict(wait_for(reached, timeout=30, interval=0.1, what=f"{type_} reason {reason}"))


def server_env(kube: Kube, namespace: str) -> dict[str, Any]:
    deployment = kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), namespace)
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_logger_sink_is_waited_for_then_reaches_the_server(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    kube.create(endpoint_object(EP, namespace, spec({"sink": "audit", "redact": ["ssn"]})))
    waiting = wait_reason(kube, namespace, "Ready", "LoggerSinkNotFound")
    assert f"EventSink {namespace}/audit does not exist" in condition(waiting, "Ready")["message"]
    assert kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), namespace) is None
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "collector", "namespace": namespace},
            "spec": {"ports": [{"port": 8080}], "selector": {"app": "collector"}},
        }
    )
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": c.KIND_EVENT_SINK,
            "metadata": {"name": "audit", "namespace": namespace},
            "spec": {
                "ref": {"name": "collector", "path": "/in"},
                "mode": "structured",
                "signing": {"secretRef": {"name": "audit-key", "key": "hmac"}},
            },
        }
    )
    wait_endpoint_ready(kube, namespace, EP, timeout=60)  # the Kopf retry finds the sink
    env = server_env(kube, namespace)
    assert env[c.ENV_PAYLOAD_LOG_URL] == f"http://collector.{namespace}.svc.cluster.local:8080/in"
    assert env[c.ENV_PAYLOAD_LOG_ENCODING] == "structured"
    assert env[c.ENV_PAYLOAD_LOG_REDACT] == "ssn"
    assert env[c.ENV_PAYLOAD_LOG_SIGNING_KEY] == {
        "secretKeyRef": {"name": "audit-key", "key": "hmac"}
    }
    # A sink whose destination the server cannot post to: Degraded, with what to fix.
    # (a merge patch: `ref` set to null, `uri` set; the endpoint's spec change runs a pass)
    kube.patch(
        API_VERSION,
        c.KIND_EVENT_SINK,
        "audit",
        {"spec": {"ref": None, "uri": "https://hooks.example.com/in"}},
        namespace,
    )
    kube.patch(
        API_VERSION,
        "OnlineEndpoint",
        EP,
        {"spec": spec({"sink": "audit", "sampleRate": 0.5})},
        namespace,
    )
    degraded = wait_reason(kube, namespace, "Degraded", "LoggerSinkUnusable")
    assert "use an http:// sink" in condition(degraded, "Degraded")["message"]


def test_a_logger_with_two_destinations_is_refused(kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiError) as refused:
        kube.create(endpoint_object(EP, namespace, spec({"url": "http://a/", "sink": "s"})))
    assert refused.value.status == 422 and MSG_LOGGER_DESTINATION in str(refused.value)
    with pytest.raises(ApiError) as refused:
        kube.create(endpoint_object(EP, namespace, spec({"url": "https://a/"})))
    assert refused.value.status == 422 and "logger.url" in str(refused.value)
