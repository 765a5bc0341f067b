"""The children of one endpoint deployment: model-server Deployment, Service, HPA and PDB.

The pod downloads the Model's artifact in an init container (verified against the digest the
operator recorded) into an emptyDir, then the server loads it from there; readiness means
"model loaded". Nothing about traffic lives here, so a traffic change never touches these
objects and never restarts a model pod.
"""

from __future__ import annotations

import math
from typing import Any, Final

from mlkube import contract as c
from mlkube.api.endpoint import OnlineDeployment
from mlkube.builders.endpoint_drift import (
    DRIFT_METRICS_PORT_NAME,
    baseline_initializer,
    drift_active,
    drift_server_env,
    drift_sidecar,
    drift_volumes,
    spool_mount,
)
from mlkube.builders.endpoint_logger import LogDestination, logger_env
from mlkube.builders.environment_use import EnvironmentUse, apply_environment
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import (
    COMPONENT_SERVER,
    EndpointRef,
    child_labels,
    child_metadata,
    deployment_name,
    pod_selector,
)
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pods import (
    container_security_context,
    env_list,
    http_probe,
    memory_limit_env,
    number_text,
    restricted_pod_spec,
    tmp_mount,
    tmp_volume,
)
from mlkube.builders.storage_init import initializer_container, pvc_claim, pvc_volume

MODEL_VOLUME: Final = "model"
ARTIFACT_PVC_VOLUME: Final = "artifact-pvc"
SERVICE_PORT: Final = 80
READY_PATH: Final = "/v2/health/ready"
LIVE_PATH: Final = "/v2/health/live"
# The model emptyDir holds the verified artifact: its size plus a quarter and 64 MiB of
# headroom (file-system overhead, a runtime's small side files); a Model that recorded no
# size gets the default. Past the limit the kubelet evicts the pod instead of filling the node.
MODEL_VOLUME_HEADROOM: Final = 0.25
MODEL_VOLUME_SLACK_MIB: Final = 64
DEFAULT_MODEL_VOLUME_LIMIT: Final = "20Gi"
# Pods metric an adapter (prometheus-adapter, KEDA) must serve for concurrency autoscaling.
INFLIGHT_METRIC: Final = c.METRIC_INFLIGHT_REQUESTS


def deployment_replicas(dep: OnlineDeployment) -> int:
    """Replicas the Deployment starts with (the HPA's minimum when autoscaling)."""
    if dep.autoscale is not None:
        return max(1, dep.autoscale.min_replicas)
    return 1 if dep.replicas is None else dep.replicas


def server_env(
    dep: OnlineDeployment,
    model: ModelFacts,
    drift: dict[str, str] | None = None,
    logging: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Contract variables first; user variables may add to them but never replace them.

    `drift` holds the sidecar wiring (`drift_server_env`) when the pod runs the drift sidecar;
    `logging` the payload logger's variables (`endpoint_logger.logger_env`).
    """
    framework = model.framework if dep.runtime == "auto" else dep.runtime
    ours = {
        c.ENV_MODEL_DIR: c.MODEL_DIR,
        c.ENV_MODEL_NAME: model.model_name,
        c.ENV_MODEL_VERSION: model.version,
        c.ENV_FRAMEWORK: framework,
        c.ENV_HTTP_PORT: str(c.SERVER_HTTP_PORT),
        c.ENV_METRICS_PORT: str(c.SERVER_METRICS_PORT),
        c.ENV_GRPC_PORT: str(c.SERVER_GRPC_PORT),
    }
    if model.entrypoint:
        ours[c.ENV_ENTRYPOINT] = model.entrypoint
    settings = dep.request_settings
    if settings is not None and settings.timeout_seconds is not None:
        ours[c.ENV_REQUEST_TIMEOUT] = number_text(settings.timeout_seconds)
    if settings is not None and settings.max_concurrency is not None:
        ours[c.ENV_MAX_CONCURRENCY] = str(settings.max_concurrency)
    if dep.batcher is not None:
        ours[c.ENV_MAX_BATCH_SIZE] = str(dep.batcher.max_batch_size)
        ours[c.ENV_MAX_BATCH_LATENCY_MS] = number_text(dep.batcher.max_latency)
    ours.update(drift or {})
    logged = {e["name"] for e in logging or []}
    extra = {e.name: e.value for e in dep.env if e.name not in ours and e.name not in logged}
    return [*env_list(ours), *(logging or []), *env_list(extra)]


def model_volume_limit(model: ModelFacts) -> str:
    """`sizeLimit` of the model emptyDir, derived from the verified artifact size."""
    if model.size is None:
        return DEFAULT_MODEL_VOLUME_LIMIT
    mib = math.ceil(model.size * (1 + MODEL_VOLUME_HEADROOM) / (1024 * 1024))
    return f"{mib + MODEL_VOLUME_SLACK_MIB}Mi"


def _resources(dep: OnlineDeployment) -> dict[str, Any]:
    if dep.resources is None:
        return {}
    out: dict[str, Any] = {}
    for key in ("requests", "limits"):
        values = getattr(dep.resources, key)
        if values:
            out[key] = {name: str(v) for name, v in values.items()}
    return out


def storage_initializer(
    model: ModelFacts, config: OperatorConfig, resources: dict[str, Any]
) -> dict[str, Any]:
    """Init container: download the artifact and refuse anything but the verified digest."""
    return initializer_container(
        name="storage-initializer",
        uri=model.uri,
        digest=model.digest,
        volume=MODEL_VOLUME,
        dest=c.MODEL_DIR,
        config=config,
        resources=resources,
        pvc_volume=ARTIFACT_PVC_VOLUME,
    )


def server_container(
    dep: OnlineDeployment,
    model: ModelFacts,
    config: OperatorConfig,
    resources: dict[str, Any],
    drift: dict[str, str] | None = None,
    logging: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    probes = dep.probes
    delay = probes.initial_delay_seconds if probes else None
    period = probes.period_seconds if probes and probes.period_seconds else None
    failures = probes.failure_threshold if probes and probes.failure_threshold else 3
    container: dict[str, Any] = {
        "name": "server",
        "image": config.serving_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mlkube_serving", "serve"],
        "env": server_env(dep, model, drift, logging),
        "ports": [
            {"name": "http", "containerPort": c.SERVER_HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": c.SERVER_GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": c.SERVER_METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": http_probe(
            READY_PATH, initial_delay=delay, period=period or 5, failure_threshold=failures
        ),
        "livenessProbe": http_probe(
            LIVE_PATH, initial_delay=delay, period=max(period or 10, 10), failure_threshold=failures
        ),
        "securityContext": container_security_context(config.run_as_user),
        # A model or scoring script that fails to load (a missing module) exits with the error
        # as its last log line: the pod's termination message carries it to the status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": MODEL_VOLUME, "mountPath": c.MODEL_DIR, "readOnly": True},
            tmp_mount(),
        ],
    }
    if drift:
        container["volumeMounts"].insert(1, spool_mount())
    if resources:
        container["resources"] = resources
    env = container["env"]
    if (resources.get("limits") or {}).get("memory") and all(
        e["name"] != c.ENV_MEMORY_LIMIT for e in env
    ):
        env.append(memory_limit_env("server"))
    return container


def build_server_deployment(
    owner: EndpointRef,
    dep: OnlineDeployment,
    model: ModelFacts,
    config: OperatorConfig,
    environment: EnvironmentUse | None = None,
    log_destination: LogDestination | None = None,
) -> dict[str, Any]:
    """The model-server Deployment of one endpoint deployment; with `environment` the server
    runs on its image (and without download when that image packages the model); with
    `log_destination` it logs payloads there."""
    name = deployment_name(owner.name, dep.name)
    labels = child_labels(owner.name, COMPONENT_SERVER, dep.name)
    pod_labels = {**labels, c.LABEL_MODEL: model.model_name, c.LABEL_VERSION: model.version}
    resources = _resources(dep)
    volumes = [{"name": MODEL_VOLUME, "emptyDir": {"sizeLimit": model_volume_limit(model)}}]
    volumes.append(tmp_volume())
    claim = pvc_claim(model.uri)
    if claim:
        volumes.append(pvc_volume(ARTIFACT_PVC_VOLUME, claim))
    init_containers = [storage_initializer(model, config, resources)]
    logging = logger_env(owner, dep, log_destination) if log_destination else None
    containers = [server_container(dep, model, config, resources, logging=logging)]
    if drift_active(dep, model):
        init_containers.append(baseline_initializer(model, config, resources, ARTIFACT_PVC_VOLUME))
        containers = [
            server_container(dep, model, config, resources, drift_server_env(dep, config), logging),
            drift_sidecar(dep, config),
        ]
        volumes.extend(drift_volumes(dep, model, ARTIFACT_PVC_VOLUME))
    spec: dict[str, Any] = {
        "selector": {"matchLabels": pod_selector(owner.name, COMPONENT_SERVER, dep.name)},
        "revisionHistoryLimit": 3,
        # Never drop below the serving capacity while a new model version rolls in.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
        },
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(c.SERVER_METRICS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": restricted_pod_spec(
                run_as_user=config.run_as_user,
                init_containers=init_containers,
                containers=containers,
                volumes=volumes,
            ),
        },
    }
    if environment is not None:
        apply_environment(
            spec["template"]["spec"],
            environment,
            containers=["server"],
            pull_secret=config.build.image_pull_secret,
            packaged=environment.packages(model.name, model.digest),
            model_volume=MODEL_VOLUME,
        )
    if dep.autoscale is None:
        # With autoscale the HPA owns spec.replicas; applying it here would fight the HPA.
        spec = {"replicas": deployment_replicas(dep), **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(
            owner, name, {**labels, c.LABEL_MODEL: model.model_name, c.LABEL_VERSION: model.version}
        ),
        "spec": spec,
    }


def build_server_service(
    owner: EndpointRef, dep: OnlineDeployment, drift_metrics: bool = False
) -> dict[str, Any]:
    """ClusterIP Service in front of one deployment's pods (the router's upstream).

    With the drift sidecar its metrics port is listed too, so one ServiceMonitor scrapes every
    pod's metrics; the sidecar's ingest port stays off the Service (only loopback feeds it).
    """
    name = deployment_name(owner.name, dep.name)
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
        # gRPC (OIP) straight to the pods: h2c, so meshes and Gateways treat it as HTTP/2.
        {
            "name": "grpc",
            "port": c.SERVER_GRPC_PORT,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "kubernetes.io/h2c",
        },
        {
            "name": "metrics",
            "port": c.SERVER_METRICS_PORT,
            "targetPort": "metrics",
            "protocol": "TCP",
        },
    ]
    if drift_metrics:
        ports.append(
            {
                "name": DRIFT_METRICS_PORT_NAME,
                "port": c.DRIFT_METRICS_PORT,
                "targetPort": DRIFT_METRICS_PORT_NAME,
                "protocol": "TCP",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(
            owner, name, child_labels(owner.name, COMPONENT_SERVER, dep.name)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": pod_selector(owner.name, COMPONENT_SERVER, dep.name),
            "ports": ports,
        },
    }


def build_hpa(owner: EndpointRef, dep: OnlineDeployment) -> dict[str, Any] | None:
    """autoscaling/v2 HPA when autoscale is set.

    CPU targets use the Resource metric (metrics-server). Concurrency targets use the Pods metric
    `mlkube_inflight_requests`, which needs a custom-metrics adapter (e.g. prometheus-adapter)
    that serves the model server's in-flight gauge.
    """
    scale = dep.autoscale
    if scale is None:
        return None
    name = deployment_name(owner.name, dep.name)
    if scale.target_cpu_utilization is not None:
        metric: dict[str, Any] = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {
                    "type": "Utilization",
                    "averageUtilization": scale.target_cpu_utilization,
                },
            },
        }
    else:
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": INFLIGHT_METRIC},
                "target": {"type": "AverageValue", "averageValue": str(scale.target_concurrency)},
            },
        }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(
            owner, name, child_labels(owner.name, COMPONENT_SERVER, dep.name)
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            # minReplicas 0 needs the alpha HPAScaleToZero gate; 1 works everywhere.
            "minReplicas": max(1, scale.min_replicas),
            "maxReplicas": scale.max_replicas,
            "metrics": [metric],
        },
    }


def build_pdb(
    owner: EndpointRef, name: str, component: str, deployment: str | None, replicas: int
) -> dict[str, Any] | None:
    """PodDisruptionBudget (one pod at a time) when more than one replica serves."""
    if replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(owner, name, child_labels(owner.name, component, deployment)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": pod_selector(owner.name, component, deployment)},
        },
    }


def build_deployment_children(
    owner: EndpointRef,
    dep: OnlineDeployment,
    model: ModelFacts,
    config: OperatorConfig,
    environment: EnvironmentUse | None = None,
    log_destination: LogDestination | None = None,
) -> list[dict[str, Any]]:
    """Deployment, Service and, when they apply, HPA and PDB of one endpoint deployment."""
    children = [
        build_server_deployment(owner, dep, model, config, environment, log_destination),
        build_server_service(owner, dep, drift_active(dep, model)),
    ]
    hpa = build_hpa(owner, dep)
    if hpa is not None:
        children.append(hpa)
    pdb = build_pdb(
        owner,
        deployment_name(owner.name, dep.name),
        COMPONENT_SERVER,
        dep.name,
        deployment_replicas(dep),
    )
    if pdb is not None:
        children.append(pdb)
    return children
