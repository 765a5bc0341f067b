"""Router config (checked by the router's own parser), ConfigMap, router Deployment, keys."""

from __future__ import annotations

import base64
import json
from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router import (
    build_endpoint_service,
    build_keys_secret,
    build_router_children,
    build_router_config,
    build_router_configmap,
    build_router_deployment,
    read_keys,
)
from mlkube.builders.endpoint_router_push import read_push_key
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube_serving.router.config import dump_config, parse_config


def test_router_config_literal(owner: EndpointRef, make_spec: Any, config: OperatorConfig) -> None:
    spec = make_spec(traffic={"blue": 100, "green": 0}, mirror={"green": 10}, auth={"mode": "key"})
    assert build_router_config(owner, spec, config, revision=7) == {
        "version": 1,
        "revision": 7,
        "endpoint": "credit",
        "deployments": {
            "blue": {
                "url": "http://credit-blue-09bb84ab.ml.svc.cluster.local",
                "healthPath": "/v2/health/ready",
                "grpcPort": 8081,
            },
            "green": {
                "url": "http://credit-green-2f01bca0.ml.svc.cluster.local",
                "healthPath": "/v2/health/ready",
                "grpcPort": 8081,
            },
        },
        "traffic": {"blue": 100, "green": 0},
        "mirror": {"green": 10},
        "auth": {"mode": "key", "keysFile": "/etc/mlkube/keys/keys"},
        "timeoutSeconds": 30.0,
        "maxInflightBytes": 128 * 1024 * 1024,
        "mirrorMaxBytes": 64 * 1024 * 1024,
        "maxResponseBytes": 32 * 1024 * 1024,
    }


def test_router_config_round_trips_through_the_router_parser(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    cases: list[OnlineEndpointSpec] = [
        make_spec(),
        make_spec(traffic={"blue": 100, "green": 0}, mirror={"green": 25}),
        make_spec(traffic={}, auth={"mode": "key"}),
    ]
    for spec in cases:
        doc = build_router_config(owner, spec, config)
        parsed = parse_config(json.loads(json.dumps(doc)))  # what the mounted file holds
        assert parsed.endpoint == "credit"
        assert dict(parsed.traffic) == spec.traffic
        assert dict(parsed.mirror) == {k: v for k, v in spec.mirror.items() if v}
        assert parsed.auth.mode == spec.auth.mode
        assert {name: d.port for name, d in parsed.deployments.items()} == {
            "blue": 80,
            "green": 80,
        }
        dumped = dump_config(parsed)
        # Everything the operator sets survives the router's parse/dump unchanged.
        assert {key: dumped[key] for key in doc} == doc


def test_router_timeout_covers_the_slowest_deployment(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    spec = make_spec(
        deployments=[
            {"name": "blue", "model": "a", "requestSettings": {"timeoutSeconds": 90}},
            {"name": "green", "model": "b"},
        ],
        traffic={"blue": 50, "green": 50},
    )
    doc = build_router_config(owner, spec, config)
    assert doc["timeoutSeconds"] == 90
    assert parse_config(doc).timeout_seconds == 90.0


def test_configmap_is_deterministic_json(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> None:
    first = build_router_configmap(owner, spec, config)
    again = build_router_configmap(owner, spec, config)
    assert first == again
    assert first["metadata"]["name"] == "credit-router-4f979dbf"
    text = first["data"]["config.json"]
    assert json.loads(text) == build_router_config(owner, spec, config)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_keys_secret_round_trip(owner: EndpointRef) -> None:
    secret = build_keys_secret(owner, ["k-one", "k-two"])
    assert secret["metadata"]["name"] == "credit-keys-763bfcf2"
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["keys"]) == b"k-one\nk-two\n"
    assert read_keys(secret) == ["k-one", "k-two"]
    assert read_keys(None) == []
    commented = {"data": {"keys": base64.b64encode(b"# rotated\n\nnew\n").decode()}}
    assert read_keys(commented) == ["new"]


def test_router_deployment_mounts_a_directory_and_carries_no_config_checksum(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> None:
    dep = build_router_deployment(owner, spec, config)
    template = dep["spec"]["template"]
    # A config checksum would restart the router on every traffic change.
    assert set(template["metadata"]["annotations"]) == {
        "prometheus.io/scrape",
        "prometheus.io/port",
        "prometheus.io/path",
    }
    pod = template["spec"]
    (router,) = pod["containers"]
    assert router["command"] == ["python", "-m", "mlkube_serving", "router"]
    assert {"name": "MLKUBE_ROUTER_CONFIG", "value": "/etc/mlkube/router/config.json"} in router[
        "env"
    ]
    # subPath mounts never see ConfigMap updates; the router watches a directory mount.
    assert all("subPath" not in m for m in router["volumeMounts"])
    assert {"name": "config", "mountPath": "/etc/mlkube/router", "readOnly": True} in router[
        "volumeMounts"
    ]
    assert router["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert router["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["automountServiceAccountToken"] is False
    assert router["securityContext"]["readOnlyRootFilesystem"] is True
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["selector"]["matchLabels"] == {
        "mlkube.dev/endpoint": "credit",
        "mlkube.dev/component": "router",
    }
    assert not any(v["name"] == "keys" for v in pod["volumes"])  # auth none


def test_every_router_mounts_its_endpoints_push_key_and_nothing_else_carries_it(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> None:
    pod = build_router_deployment(owner, spec, config)["spec"]["template"]["spec"]
    assert {
        "name": "push-key",
        "secret": {"secretName": "credit-push-61674f15", "defaultMode": 0o440},
    } in pod["volumes"]
    (router,) = pod["containers"]
    assert {"name": "push-key", "mountPath": "/etc/mlkube/push", "readOnly": True} in router[
        "volumeMounts"
    ]
    assert {"name": "MLKUBE_ROUTER_PUSH_KEY_FILE", "value": "/etc/mlkube/push/key"} in router["env"]
    children = build_router_children(owner, spec, config, [], revision=3, push_key="s3cret")
    secret = next(c for c in children if c["kind"] == "Secret")
    assert secret["metadata"]["name"] == "credit-push-61674f15"
    assert read_push_key(secret) == b"s3cret"
    others = json.dumps([c for c in children if c["kind"] != "Secret"])
    assert "s3cret" not in others and base64.b64encode(b"s3cret").decode() not in others
    configmap = children[0]
    assert json.loads(configmap["data"]["config.json"])["revision"] == 3
    assert read_push_key(None) is None
    assert read_push_key({"data": {"key": ""}}) is None


def test_key_auth_mounts_the_keys_secret(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig
) -> None:
    spec = make_spec(auth={"mode": "key"})
    pod = build_router_deployment(owner, spec, config)["spec"]["template"]["spec"]
    assert {
        "name": "keys",
        "secret": {"secretName": "credit-keys-763bfcf2", "defaultMode": 0o440},
    } in pod["volumes"]
    assert {"name": "keys", "mountPath": "/etc/mlkube/keys", "readOnly": True} in pod["containers"][
        0
    ]["volumeMounts"]
    kinds = [c["kind"] for c in build_router_children(owner, spec, config, ["k"])]
    assert kinds == ["ConfigMap", "Secret", "Deployment", "PodDisruptionBudget", "Service"]


def test_endpoint_service_is_the_stable_url(owner: EndpointRef) -> None:
    svc = build_endpoint_service(owner)
    assert svc["metadata"]["name"] == "credit"
    assert svc["spec"]["selector"] == {
        "mlkube.dev/endpoint": "credit",
        "mlkube.dev/component": "router",
    }
    assert svc["spec"]["ports"][0] == {
        "name": "http",
        "port": 80,
        "targetPort": "http",
        "protocol": "TCP",
    }


def test_single_router_replica_has_no_pdb(owner: EndpointRef, spec: OnlineEndpointSpec) -> None:
    kinds = [
        c["kind"] for c in build_router_children(owner, spec, OperatorConfig(router_replicas=1), [])
    ]
    assert kinds == ["ConfigMap", "Deployment", "Service"]
