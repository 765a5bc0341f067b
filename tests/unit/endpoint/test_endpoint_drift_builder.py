"""Drift monitoring in the model pods: baseline init step, sidecar, server env, Service port."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlkube.api.endpoint import OnlineDeployment
from mlkube.builders.endpoint_server import build_server_deployment, build_server_service
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import (
    OperatorConfig,
    OperatorConfigError,
    parse_operator_config,
)
from mlkube.builders.pods import memory_limit_env

IMAGE = "registry.example/mlkube-serving:1.2.3"
BASELINE_DIGEST = "sha256:" + "b" * 64
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

# The sidecar sizes its queued-payload budget from its own limit (B9).
MEMORY_LIMIT = memory_limit_env("drift")


def _dep(**drift: Any) -> OnlineDeployment:
    return OnlineDeployment.model_validate(
        {"name": "blue", "model": "credit-risk-v3", "drift": {"enabled": True, **drift}}
    )


def _with_baseline(
    model: ModelFacts, uri: str = "s3://models/credit-risk/3.baseline/p.json"
) -> Any:
    return dataclasses.replace(model, baseline_uri=uri, baseline_digest=BASELINE_DIGEST)


def _pod(owner: EndpointRef, dep: OnlineDeployment, model: ModelFacts, config: Any) -> Any:
    return build_server_deployment(owner, dep, model, config)["spec"]["template"]["spec"]


def test_drift_pod_gets_baseline_step_sidecar_and_server_wiring(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    model = _with_baseline(models["credit-risk-v3"])
    pod = _pod(owner, _dep(sampleRate=0.25, windowSize=500, features=["x0", "x1"]), model, config)
    assert [c["name"] for c in pod["initContainers"]] == ["storage-initializer", "drift-baseline"]
    assert pod["initContainers"][1] == {
        "name": "drift-baseline",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "mlkube_serving", "storage-initializer"],
        "args": [
            "--uri",
            "s3://models/credit-risk/3.baseline/p.json",
            "--dest",
            "/mnt/drift-baseline",
            "--digest",
            BASELINE_DIGEST,
        ],
        "securityContext": RESTRICTED,
        "volumeMounts": [
            {"name": "drift-baseline", "mountPath": "/mnt/drift-baseline"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "env": [{"name": "HOME", "value": "/tmp"}],
    }
    server, sidecar = pod["containers"]
    assert server["name"] == "server"
    assert server["env"][-3:] == [
        {"name": "MLKUBE_DRIFT_URL", "value": "http://127.0.0.1:8090"},
        {"name": "MLKUBE_DRIFT_SAMPLE_RATE", "value": "0.25"},
        {"name": "MLKUBE_DRIFT_SPOOL_DIR", "value": "/mnt/drift-spool"},
    ]
    assert server["volumeMounts"] == [
        {"name": "model", "mountPath": "/mnt/models", "readOnly": True},
        {"name": "drift-spool", "mountPath": "/mnt/drift-spool"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    assert server["securityContext"] == RESTRICTED
    assert sidecar == {
        "name": "drift",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "mlkube_serving", "drift-sidecar"],
        "args": ["--port", "8090", "--metrics-port", "8091"],
        "env": [
            {"name": "MLKUBE_DRIFT_PROFILE", "value": "/mnt/drift-baseline"},
            {"name": "MLKUBE_DRIFT_SPOOL_DIR", "value": "/mnt/drift-spool"},
            {"name": "MLKUBE_DRIFT_WINDOW_SIZE", "value": "500"},
            {"name": "MLKUBE_DRIFT_FEATURES", "value": "x0,x1"},
            MEMORY_LIMIT,
        ],
        "ports": [
            {"name": "drift", "containerPort": 8090, "protocol": "TCP"},
            {"name": "drift-metrics", "containerPort": 8091, "protocol": "TCP"},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "drift"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "securityContext": RESTRICTED,
        "volumeMounts": [
            {"name": "drift-baseline", "mountPath": "/mnt/drift-baseline", "readOnly": True},
            {"name": "drift-spool", "mountPath": "/mnt/drift-spool"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"memory": "1Gi"},
        },
    }
    assert pod["volumes"] == [
        {"name": "model", "emptyDir": {"sizeLimit": "20Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        {"name": "drift-baseline", "emptyDir": {}},
        {"name": "drift-spool", "emptyDir": {"medium": "Memory", "sizeLimit": "15Mi"}},
    ]


def test_the_spool_is_sized_for_the_server_workers(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    model = _with_baseline(models["credit-risk-v3"])
    dep = OnlineDeployment.model_validate(
        {"name": "blue", "model": "credit-risk-v3", "drift": {"enabled": True},
         "env": [{"name": "MLKUBE_WORKERS", "value": "4"}]}
    )  # fmt: skip
    volumes = {v["name"]: v for v in _pod(owner, dep, model, config)["volumes"]}
    # 4 rings of 4 MiB (5 Mi each with header and layouts) and 2 spare ones
    assert volumes["drift-spool"] == {
        "name": "drift-spool",
        "emptyDir": {"medium": "Memory", "sizeLimit": "30Mi"},
    }
    no_drift = OnlineDeployment.model_validate({"name": "blue", "model": "credit-risk-v3"})
    pod = _pod(owner, no_drift, model, config)
    assert "drift-spool" not in {v["name"] for v in pod["volumes"]}
    assert all(m["name"] != "drift-spool" for m in pod["containers"][0]["volumeMounts"])


def test_defaults_leave_window_and_features_to_the_profile(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    pod = _pod(owner, _dep(), _with_baseline(models["credit-risk-v3"]), config)
    assert pod["containers"][1]["env"] == [
        {"name": "MLKUBE_DRIFT_PROFILE", "value": "/mnt/drift-baseline"},
        {"name": "MLKUBE_DRIFT_SPOOL_DIR", "value": "/mnt/drift-spool"},
        MEMORY_LIMIT,
    ]
    assert {"name": "MLKUBE_DRIFT_SAMPLE_RATE", "value": "1"} in pod["containers"][0]["env"]


def test_operator_drift_port_is_used_everywhere(
    owner: EndpointRef, models: dict[str, ModelFacts]
) -> None:
    config = OperatorConfig(serving_image=IMAGE, drift_port=18090)
    pod = _pod(owner, _dep(), _with_baseline(models["credit-risk-v3"]), config)
    server, sidecar = pod["containers"]
    assert {"name": "MLKUBE_DRIFT_URL", "value": "http://127.0.0.1:18090"} in server["env"]
    assert sidecar["args"] == ["--port", "18090", "--metrics-port", "8091"]
    assert sidecar["ports"][0] == {"name": "drift", "containerPort": 18090, "protocol": "TCP"}


def test_without_baseline_the_pod_is_unchanged(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    model = models["credit-risk-v3"]
    plain = OnlineDeployment.model_validate({"name": "blue", "model": "credit-risk-v3"})
    assert _pod(owner, _dep(), model, config) == _pod(owner, plain, model, config)
    assert build_server_service(owner, _dep()) == build_server_service(owner, plain)


def test_disabled_drift_adds_nothing_even_with_a_baseline(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    model = _with_baseline(models["credit-risk-v3"])
    off = OnlineDeployment.model_validate(
        {"name": "blue", "model": "credit-risk-v3", "drift": {"enabled": False}}
    )
    pod = _pod(owner, off, model, config)
    assert [c["name"] for c in pod["containers"]] == ["server"]
    assert [c["name"] for c in pod["initContainers"]] == ["storage-initializer"]


def test_a_baseline_without_digest_runs_no_sidecar(
    owner: EndpointRef, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    # Its bytes could not be verified; the operator reports DriftBaselineUnreadable instead.
    model = dataclasses.replace(_with_baseline(models["credit-risk-v3"]), baseline_digest=None)
    pod = _pod(owner, _dep(), model, config)
    assert [c["name"] for c in pod["containers"]] == ["server"]
    assert [c["name"] for c in pod["initContainers"]] == ["storage-initializer"]


@pytest.mark.parametrize(
    ("baseline", "mount", "extra_volume"),
    [
        # Beside the model on the same claim: the model's claim volume is reused.
        ("pvc://model-store/credit-risk/4.baseline/p.json", "artifact-pvc", None),
        (
            "pvc://profiles/credit-risk/p.json",
            "baseline-pvc",
            {
                "name": "baseline-pvc",
                "persistentVolumeClaim": {"claimName": "profiles", "readOnly": True},
            },
        ),
    ],
)
def test_pvc_baselines_mount_their_claim(
    owner: EndpointRef,
    models: dict[str, ModelFacts],
    config: OperatorConfig,
    baseline: str,
    mount: str,
    extra_volume: dict[str, Any] | None,
) -> None:
    model = _with_baseline(models["credit-risk-v4"], baseline)  # pvc://model-store/credit-risk/4
    dep = OnlineDeployment.model_validate(
        {"name": "green", "model": "credit-risk-v4", "drift": {"enabled": True}}
    )
    pod = _pod(owner, dep, model, config)
    claim = baseline.split("/")[2]
    assert pod["initContainers"][1]["volumeMounts"][-1] == {
        "name": mount,
        "mountPath": f"/mnt/pvc/{claim}",
        "readOnly": True,
    }
    names = [v["name"] for v in pod["volumes"]]
    assert names.count("artifact-pvc") == 1
    if extra_volume is None:
        assert "baseline-pvc" not in names
    else:
        assert pod["volumes"][-1] == extra_volume


def test_service_lists_drift_metrics_but_never_the_ingest_port(owner: EndpointRef) -> None:
    ports = build_server_service(owner, _dep(), drift_metrics=True)["spec"]["ports"]
    assert ports == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {
            "name": "grpc",
            "port": 8081,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "kubernetes.io/h2c",
        },
        {"name": "metrics", "port": 8082, "targetPort": "metrics", "protocol": "TCP"},
        {"name": "drift-metrics", "port": 8091, "targetPort": "drift-metrics", "protocol": "TCP"},
    ]


def test_read_model_picks_up_the_baseline() -> None:
    obj = {
        "metadata": {"generation": 1},
        "spec": {
            "modelName": "credit-risk",
            "version": "3",
            "framework": "sklearn",
            "artifact": {"uri": "s3://m/3"},
            "baseline": {"uri": "s3://m/3.baseline/p.json", "digest": BASELINE_DIGEST},
        },
        "status": {
            "observedGeneration": 1,
            "artifact": {"digest": "sha256:" + "3" * 64},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    facts = read_model("credit-risk-v3", obj)
    assert isinstance(facts, ModelFacts)
    assert (facts.baseline_uri, facts.baseline_digest) == (
        "s3://m/3.baseline/p.json",
        BASELINE_DIGEST,
    )
    del obj["spec"]["baseline"]
    facts = read_model("credit-risk-v3", obj)
    assert isinstance(facts, ModelFacts) and facts.baseline_uri is None


def test_drift_and_monitoring_operator_settings() -> None:
    # In a pod the defaults are the dataclass's (outside one, pod networks are loopback only).
    assert parse_operator_config({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) == OperatorConfig()
    got = parse_operator_config(
        {
            "MLKUBE_DRIFT_PORT": "18090",
            "MLKUBE_DRIFT_POLL_INTERVAL_SECONDS": "0.5",
            "MLKUBE_DRIFT_POLL_TIMEOUT_SECONDS": "1",
            "MLKUBE_DRIFT_CLEAR_EVALUATIONS": "2",
            "MLKUBE_DRIFT_COOLDOWN_SECONDS": "0",
            "MLKUBE_MONITORING": "off",
            "MLKUBE_MONITORING_LABELS": "release=prom, team=ml",
        }
    )
    assert (got.drift_port, got.drift_poll_interval, got.drift_poll_timeout) == (18090, 0.5, 1.0)
    assert (got.drift_clear_evaluations, got.drift_cooldown, got.monitoring) == (2, 0.0, False)
    assert got.monitoring_labels == (("release", "prom"), ("team", "ml"))
    for bad in (
        {"MLKUBE_DRIFT_POLL_INTERVAL_SECONDS": "0"},
        {"MLKUBE_DRIFT_COOLDOWN_SECONDS": "nan"},
        {"MLKUBE_DRIFT_CLEAR_EVALUATIONS": "0"},
        {"MLKUBE_MONITORING": "maybe"},
        {"MLKUBE_MONITORING_LABELS": "release"},
    ):
        with pytest.raises(OperatorConfigError):
            parse_operator_config(bad)
