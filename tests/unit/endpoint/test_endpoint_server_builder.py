"""Model-server Deployment, Service, HPA and PDB of one endpoint deployment, as literal dicts."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_server import (
    build_deployment_children,
    build_hpa,
    build_server_deployment,
    build_server_service,
    server_env,
)
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig

OWNER_REF = {
    "apiVersion": "mlkube.dev/v1alpha1",
    "kind": "OnlineEndpoint",
    "name": "credit",
    "uid": "0f1e2d3c-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_blue_deployment_literal(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    blue = spec.deployments[0]
    got = build_server_deployment(owner, blue, models["credit-risk-v3"], config)
    labels = {
        "app.kubernetes.io/managed-by": "mlkube",
        "mlkube.dev/endpoint": "credit",
        "mlkube.dev/component": "model-server",
        "mlkube.dev/deployment": "blue",
        "mlkube.dev/model": "credit-risk",
        "mlkube.dev/version": "3",
    }
    image = "registry.example/mlkube-serving:1.2.3"
    assert got == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "credit-blue-09bb84ab",
            "namespace": "ml",
            "labels": labels,
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "replicas": 2,
            "selector": {
                "matchLabels": {
                    "mlkube.dev/endpoint": "credit",
                    "mlkube.dev/component": "model-server",
                    "mlkube.dev/deployment": "blue",
                }
            },
            "revisionHistoryLimit": 3,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": "8082",
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 30,
                    "initContainers": [
                        {
                            "name": "storage-initializer",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-m", "mlkube_serving", "storage-initializer"],
                            "args": [
                                "--uri",
                                "s3://models/credit-risk/3",
                                "--dest",
                                "/mnt/models",
                                "--digest",
                                "sha256:" + "3" * 64,
                            ],
                            "securityContext": RESTRICTED_CONTAINER,
                            "volumeMounts": [
                                {"name": "model", "mountPath": "/mnt/models"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                            "env": [{"name": "HOME", "value": "/tmp"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-m", "mlkube_serving", "serve"],
                            "env": [
                                {"name": "MLKUBE_MODEL_DIR", "value": "/mnt/models"},
                                {"name": "MLKUBE_MODEL_NAME", "value": "credit-risk"},
                                {"name": "MLKUBE_MODEL_VERSION", "value": "3"},
                                {"name": "MLKUBE_FRAMEWORK", "value": "sklearn"},
                                {"name": "MLKUBE_HTTP_PORT", "value": "8080"},
                                {"name": "MLKUBE_METRICS_PORT", "value": "8082"},
                                {"name": "MLKUBE_GRPC_PORT", "value": "8081"},
                            ],
                            "ports": [
                                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 8082, "protocol": "TCP"},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/v2/health/ready", "port": "http"},
                                "periodSeconds": 5,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/v2/health/live", "port": "http"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "securityContext": RESTRICTED_CONTAINER,
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "volumeMounts": [
                                {"name": "model", "mountPath": "/mnt/models", "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "model", "emptyDir": {"sizeLimit": "20Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }


def test_green_autoscaled_pvc_model(
    owner: EndpointRef,
    spec: OnlineEndpointSpec,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
) -> None:
    green = spec.deployments[1]
    got = build_server_deployment(owner, green, models["credit-risk-v4"], config)
    assert "replicas" not in got["spec"]  # the HPA owns it
    pod = got["spec"]["template"]["spec"]
    init, server = pod["initContainers"][0], pod["containers"][0]
    assert server["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}}
    assert init["resources"] == server["resources"]
    assert {"name": "artifact-pvc", "mountPath": "/mnt/pvc/model-store", "readOnly": True} in init[
        "volumeMounts"
    ]
    assert {
        "name": "artifact-pvc",
        "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True},
    } in pod["volumes"]
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["MLKUBE_FRAMEWORK"] == "onnx"
    assert env["MLKUBE_REQUEST_TIMEOUT_SECONDS"] == "10"
    assert env["MLKUBE_MAX_CONCURRENCY"] == "16"


def test_user_env_adds_but_never_replaces_contract_variables(
    make_spec: Any, models: dict[str, ModelFacts]
) -> None:
    spec = make_spec(
        deployments=[
            {
                "name": "blue",
                "model": "credit-risk-v3",
                "runtime": "custom",
                "env": [
                    {"name": "MLKUBE_MODEL_DIR", "value": "/elsewhere"},
                    {"name": "FEATURE_FLAG", "value": "on"},
                ],
                "requestSettings": {"timeoutSeconds": 2.5},
            }
        ],
        traffic={"blue": 100},
    )
    model = models["credit-risk-v3"]
    with_script = ModelFacts(**{**model.__dict__, "entrypoint": "src/score.py"})
    env = server_env(spec.deployments[0], with_script)
    names = [e["name"] for e in env]
    assert len(names) == len(set(names))  # SSA treats env as a map keyed by name
    values = {e["name"]: e["value"] for e in env}
    assert values["MLKUBE_MODEL_DIR"] == "/mnt/models"
    assert values["FEATURE_FLAG"] == "on"
    assert values["MLKUBE_FRAMEWORK"] == "custom"
    assert values["MLKUBE_ENTRYPOINT"] == "src/score.py"
    assert values["MLKUBE_REQUEST_TIMEOUT_SECONDS"] == "2.5"


def test_a_batcher_turns_adaptive_batching_on(
    make_spec: Any, models: dict[str, ModelFacts]
) -> None:
    batched = {"name": "blue", "model": "credit-risk-v3", "batcher": {"maxLatency": 2.5},
               "env": [{"name": "MLKUBE_MAX_BATCH_SIZE", "value": "1"}]}  # fmt: skip
    spec = make_spec(deployments=[batched], traffic={"blue": 100})
    values = {
        e["name"]: e["value"] for e in server_env(spec.deployments[0], models["credit-risk-v3"])
    }
    assert values["MLKUBE_MAX_BATCH_SIZE"] == "32"  # the default, not the user's variable
    assert values["MLKUBE_MAX_BATCH_LATENCY_MS"] == "2.5"
    plain = make_spec(deployments=[{"name": "blue", "model": "credit-risk-v3"}],
                      traffic={"blue": 100})  # fmt: skip
    names = {e["name"] for e in server_env(plain.deployments[0], models["credit-risk-v3"])}
    assert "MLKUBE_MAX_BATCH_SIZE" not in names  # off unless asked for
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        make_spec(deployments=[{**batched, "batcher": {"maxBatchSize": 1}}], traffic={"blue": 100})


def test_probe_timing_and_storage_credentials(
    owner: EndpointRef, make_spec: Any, models: dict[str, ModelFacts]
) -> None:
    spec = make_spec(
        deployments=[
            {
                "name": "blue",
                "model": "credit-risk-v3",
                "probes": {"initialDelaySeconds": 20, "periodSeconds": 3, "failureThreshold": 6},
            }
        ],
        traffic={"blue": 100},
    )
    config = OperatorConfig(
        storage_secret="s3-credentials", s3_endpoint_url="http://minio.storage:9000"
    )
    got = build_server_deployment(owner, spec.deployments[0], models["credit-risk-v3"], config)
    pod = got["spec"]["template"]["spec"]
    server, init = pod["containers"][0], pod["initContainers"][0]
    assert server["readinessProbe"]["initialDelaySeconds"] == 20
    assert server["readinessProbe"]["periodSeconds"] == 3
    assert server["readinessProbe"]["failureThreshold"] == 6
    assert server["livenessProbe"]["periodSeconds"] == 10  # never probe liveness faster
    assert init["envFrom"] == [{"secretRef": {"name": "s3-credentials", "optional": True}}]
    assert {"name": "MLKUBE_S3_ENDPOINT_URL", "value": "http://minio.storage:9000"} in init["env"]
    assert got["spec"]["replicas"] == 1  # neither replicas nor autoscale


def test_service_literal(owner: EndpointRef, spec: OnlineEndpointSpec) -> None:
    assert build_server_service(owner, spec.deployments[0]) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "credit-blue-09bb84ab",
            "namespace": "ml",
            "labels": {
                "app.kubernetes.io/managed-by": "mlkube",
                "mlkube.dev/endpoint": "credit",
                "mlkube.dev/component": "model-server",
                "mlkube.dev/deployment": "blue",
            },
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {
                "mlkube.dev/endpoint": "credit",
                "mlkube.dev/component": "model-server",
                "mlkube.dev/deployment": "blue",
            },
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "grpc",
                    "port": 8081,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
                {"name": "metrics", "port": 8082, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def test_hpa_on_concurrency_uses_the_pods_metric(
    owner: EndpointRef, spec: OnlineEndpointSpec
) -> None:
    hpa = build_hpa(owner, spec.deployments[1])
    assert hpa is not None
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["name"] == "credit-green-2f01bca0"
    assert hpa["spec"] == {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "credit-green-2f01bca0",
        },
        "minReplicas": 1,
        "maxReplicas": 4,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "mlkube_inflight_requests"},
                    "target": {"type": "AverageValue", "averageValue": "8"},
                },
            }
        ],
    }
    assert build_hpa(owner, spec.deployments[0]) is None


def test_hpa_on_cpu_uses_the_resource_metric(owner: EndpointRef, make_spec: Any) -> None:
    spec = make_spec(
        deployments=[
            {
                "name": "blue",
                "model": "m",
                "autoscale": {"minReplicas": 0, "maxReplicas": 3, "targetCPUUtilization": 60},
            }
        ],
        traffic={"blue": 100},
    )
    hpa = build_hpa(owner, spec.deployments[0])
    assert hpa is not None
    assert hpa["spec"]["minReplicas"] == 1  # 0 needs the alpha HPAScaleToZero gate
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60},
            },
        }
    ]


@pytest.mark.parametrize(
    ("deployment", "kinds"),
    [
        ({"replicas": 1}, ["Deployment", "Service"]),
        ({"replicas": 3}, ["Deployment", "Service", "PodDisruptionBudget"]),
        (
            {"autoscale": {"minReplicas": 1, "maxReplicas": 5, "targetConcurrency": 4}},
            ["Deployment", "Service", "HorizontalPodAutoscaler"],
        ),
        (
            {"autoscale": {"minReplicas": 2, "maxReplicas": 5, "targetConcurrency": 4}},
            ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"],
        ),
    ],
)
def test_pdb_only_when_more_than_one_replica_serves(
    owner: EndpointRef,
    make_spec: Any,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
    deployment: dict[str, Any],
    kinds: list[str],
) -> None:
    spec = make_spec(
        deployments=[{"name": "blue", "model": "credit-risk-v3", **deployment}],
        traffic={"blue": 100},
    )
    children = build_deployment_children(
        owner, spec.deployments[0], models["credit-risk-v3"], config
    )
    assert [c["kind"] for c in children] == kinds
    pdbs = [c for c in children if c["kind"] == "PodDisruptionBudget"]
    for pdb in pdbs:
        assert pdb["spec"] == {
            "maxUnavailable": 1,
            "selector": {
                "matchLabels": {
                    "mlkube.dev/endpoint": "credit",
                    "mlkube.dev/component": "model-server",
                    "mlkube.dev/deployment": "blue",
                }
            },
        }
