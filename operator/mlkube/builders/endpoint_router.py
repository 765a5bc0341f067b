"""The endpoint's front: router config (ConfigMap), router Deployment, stable Service, keys.

The router reads its config from a mounted ConfigMap *directory* and reloads it when the kubelet
swaps the file, so a traffic change is one ConfigMap write: no router or model pod restarts (no
config checksum in the pod template on purpose); the operator also pushes the same bytes
(signed, `builders.endpoint_router_push`), ordered by `revision` (`reconcile.router_revision`).
Shape: what `mlkube_serving.router.config.parse_config` accepts (version 1, docs/router.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Final

from mlkube import contract as c
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router_push import build_push_secret, push_key_path, push_volume
from mlkube.builders.endpoint_server import READY_PATH, SERVICE_PORT, build_pdb
from mlkube.builders.names import (
    COMPONENT_KEYS,
    COMPONENT_ROUTER,
    EndpointRef,
    child_labels,
    child_metadata,
    deployment_name,
    keys_secret_name,
    pod_selector,
    router_name,
    service_host,
    service_name,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import (
    container_security_context,
    env_list,
    http_probe,
    restricted_pod_spec,
    tmp_mount,
    tmp_volume,
)

ROUTER_CONFIG_VERSION: Final = 1
DEFAULT_ROUTER_TIMEOUT: Final = 30.0
ROUTER_MEMORY_LIMIT_MIB: Final = 512
ROUTER_RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": f"{ROUTER_MEMORY_LIMIT_MIB}Mi"},
}
_MiB: Final = 1024 * 1024


def router_byte_budgets(memory_limit_mib: int = ROUTER_MEMORY_LIMIT_MIB) -> dict[str, int]:
    """The router's byte budgets as shares of its memory limit (the rest is the process).

    `maxInflightBytes` (a quarter, 128 MiB of 512) counts live request bodies and their
    upstream answers together, reserved as they are read: past it a request is answered 503.
    `maxResponseBytes` (a sixteenth, at most 32 MiB) only caps one answer (502 past it); it is
    not a bound on the total, since up to `maxConnectionsPerUpstream` (100) answers per
    deployment may be in flight. `mirrorMaxBytes` (an eighth, 64 MiB) counts mirror copies
    (body, live answer, shadow answer cap). A counted byte is held at most twice at once (the
    request body and its serialized copy sent upstream; an answer's chunks and their join, or
    the answer and the socket buffer of a slow client), so the worst case is
    2 x (128 + 64) = 384 MiB of bodies, plus the interpreter (~60 MiB) and uvicorn's
    per-connection read buffers (~64 KiB each): about 450 MiB of 512 with one worker process
    (budgets are per process; the router Deployment runs one). A flood is refused or shed,
    not an OOM kill.
    """
    limit = memory_limit_mib * _MiB
    return {
        "maxInflightBytes": limit // 4,
        "mirrorMaxBytes": limit // 8,
        "maxResponseBytes": min(32 * _MiB, limit // 16),
    }


def router_timeout(spec: OnlineEndpointSpec) -> float:
    """The router must wait at least as long as the slowest deployment is allowed to take."""
    timeouts = [
        d.request_settings.timeout_seconds
        for d in spec.deployments
        if d.request_settings is not None and d.request_settings.timeout_seconds is not None
    ]
    return max([DEFAULT_ROUTER_TIMEOUT, *timeouts])


def build_router_config(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig, revision: int = 1
) -> dict[str, Any]:
    """The router config document (sorted keys: the same spec and revision always render the
    same bytes)."""
    deployments = {
        d.name: {
            "url": "http://"
            + service_host(
                deployment_name(owner.name, d.name), owner.namespace, config.cluster_domain
            ),
            "healthPath": READY_PATH,
            "grpcPort": c.SERVER_GRPC_PORT,
        }
        for d in sorted(spec.deployments, key=lambda d: d.name)
    }
    auth: dict[str, Any] = {"mode": "none"}
    if spec.auth.mode == "key":
        auth = {"mode": "key", "keysFile": f"{c.ROUTER_KEYS_DIR}/{c.ROUTER_KEYS_FILE}"}
    return {
        "version": ROUTER_CONFIG_VERSION,
        "revision": revision,
        "endpoint": owner.name,
        "deployments": deployments,
        "traffic": dict(sorted(spec.traffic.items())),
        "mirror": {name: pct for name, pct in sorted(spec.mirror.items()) if pct > 0},
        "auth": auth,
        "timeoutSeconds": router_timeout(spec),
        **router_byte_budgets(),
    }


def render_router_config(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def config_text_hash(text: str) -> str:
    """`sha256:<hex>` of a config file: a router that loaded (or was pushed) these bytes
    answers the same hash on `GET /-/config` (`mlkube_serving.router.config.config_hash`)."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def router_config_hash(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig, revision: int = 1
) -> str:
    """`config_text_hash` of the config file the ConfigMap holds for `spec` at `revision`."""
    return config_text_hash(
        render_router_config(build_router_config(owner, spec, config, revision))
    )


def build_router_configmap(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig, revision: int = 1
) -> dict[str, Any]:
    name = router_name(owner.name)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(owner, name, child_labels(owner.name, COMPONENT_ROUTER)),
        "data": {
            c.ROUTER_CONFIG_FILE: render_router_config(
                build_router_config(owner, spec, config, revision)
            )
        },
    }


def build_keys_secret(owner: EndpointRef, keys: list[str]) -> dict[str, Any]:
    """The endpoint's API keys, one per line (the keys are generated by the handler, once)."""
    text = "".join(f"{key}\n" for key in keys)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": child_metadata(
            owner, keys_secret_name(owner.name), child_labels(owner.name, COMPONENT_KEYS)
        ),
        "type": "Opaque",
        "data": {c.ROUTER_KEYS_FILE: base64.b64encode(text.encode()).decode()},
    }


def read_keys(secret: dict[str, Any] | None) -> list[str]:
    """Keys stored in an existing keys Secret (empty when there is none)."""
    raw = ((secret or {}).get("data") or {}).get(c.ROUTER_KEYS_FILE)
    if not raw:
        return []
    text = base64.b64decode(raw).decode(errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def build_router_deployment(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> dict[str, Any]:
    name = router_name(owner.name)
    labels = child_labels(owner.name, COMPONENT_ROUTER)
    mounts = [
        {"name": "config", "mountPath": c.ROUTER_CONFIG_DIR, "readOnly": True},
        tmp_mount(),
    ]
    push_vol, push_mount = push_volume(owner)
    mounts.append(push_mount)
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": name}},
        tmp_volume(),
        push_vol,
    ]
    if spec.auth.mode == "key":
        mounts.append({"name": "keys", "mountPath": c.ROUTER_KEYS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "keys",
                # 0440 + fsGroup: readable by the non-root router, by nobody else.
                "secret": {"secretName": keys_secret_name(owner.name), "defaultMode": 0o440},
            }
        )
    container = {
        "name": "router",
        "image": config.serving_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mlkube_serving", "router"],
        "env": env_list(
            {
                c.ENV_ROUTER_CONFIG: f"{c.ROUTER_CONFIG_DIR}/{c.ROUTER_CONFIG_FILE}",
                c.ENV_ROUTER_PUSH_KEY: push_key_path(),
                c.ENV_HTTP_PORT: str(c.ROUTER_HTTP_PORT),
                c.ENV_METRICS_PORT: str(c.ROUTER_METRICS_PORT),
                c.ENV_GRPC_PORT: str(c.ROUTER_GRPC_PORT),
            }
        ),
        "ports": [
            {"name": "http", "containerPort": c.ROUTER_HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": c.ROUTER_GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": c.ROUTER_METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": http_probe("/readyz", period=5),
        "livenessProbe": http_probe("/healthz", period=10),
        "resources": ROUTER_RESOURCES,
        "securityContext": container_security_context(config.run_as_user),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(owner, name, labels),
        "spec": {
            "replicas": config.router_replicas,
            "selector": {"matchLabels": pod_selector(owner.name, COMPONENT_ROUTER)},
            "revisionHistoryLimit": 3,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(c.ROUTER_METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": restricted_pod_spec(
                    run_as_user=config.run_as_user, containers=[container], volumes=volumes
                ),
            },
        },
    }


def build_endpoint_service(owner: EndpointRef) -> dict[str, Any]:
    """The stable URL: http://<endpoint>.<namespace>.svc.<cluster domain> (port 80)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(
            owner, service_name(owner.name), child_labels(owner.name, COMPONENT_ROUTER)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": pod_selector(owner.name, COMPONENT_ROUTER),
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "grpc",
                    "port": c.ROUTER_GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
                {
                    "name": "metrics",
                    "port": c.ROUTER_METRICS_PORT,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                },
            ],
        },
    }


def build_router_children(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    config: OperatorConfig,
    keys: list[str],
    *,
    revision: int = 1,
    push_key: str | None = None,
) -> list[dict[str, Any]]:
    """ConfigMap, keys Secret (auth key), push key Secret (when `push_key` is given: only
    needed to create it), router Deployment, its PDB and the endpoint Service."""
    children = [build_router_configmap(owner, spec, config, revision)]
    if spec.auth.mode == "key":
        children.append(build_keys_secret(owner, keys))
    if push_key is not None:
        children.append(build_push_secret(owner, push_key))
    children.append(build_router_deployment(owner, spec, config))
    pdb = build_pdb(owner, router_name(owner.name), COMPONENT_ROUTER, None, config.router_replicas)
    if pdb is not None:
        children.append(pdb)
    children.append(build_endpoint_service(owner))
    return children
