"""Builder inputs: the operator config from the environment and the facts of a Model."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.builders.model_facts import ModelFacts, ModelProblem, read_model
from mlkube.builders.operator_config import (
    DEFAULT_SERVING_IMAGE,
    GatewayParent,
    OperatorConfig,
    OperatorConfigError,
    parse_gateway,
    parse_operator_config,
)

DIGEST = "sha256:" + "a" * 64


def test_defaults_and_overrides() -> None:
    # In a pod the defaults are the dataclass's (outside one, pod networks are loopback only).
    assert parse_operator_config({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) == OperatorConfig()
    assert OperatorConfig().serving_image == DEFAULT_SERVING_IMAGE
    config = parse_operator_config(
        {
            "MLKUBE_SERVING_IMAGE": "registry.local/serving:dev",
            "MLKUBE_IMAGE_PULL_POLICY": "Always",
            "MLKUBE_CLUSTER_DOMAIN": "corp.local.",
            "MLKUBE_ROUTER_REPLICAS": "3",
            "MLKUBE_GATEWAY": "infra/public/https",
            "MLKUBE_STORAGE_SECRET": "s3-creds",
            "MLKUBE_S3_ENDPOINT_URL": "http://minio:9000",
            "MLKUBE_RUN_AS_USER": "1001",
            "MLKUBE_POD_NETWORKS": "*",
            "MLKUBE_OUTBOX_PATH": "/var/lib/mlkube/outbox.db",  # outside a pod: a user's dir
        }
    )
    assert config == OperatorConfig(
        serving_image="registry.local/serving:dev",
        image_pull_policy="Always",
        cluster_domain="corp.local",
        router_replicas=3,
        default_gateway=GatewayParent(name="public", namespace="infra", section_name="https"),
        storage_secret="s3-creds",
        s3_endpoint_url="http://minio:9000",
        run_as_user=1001,
    )


@pytest.mark.parametrize(
    "env",
    [
        {"MLKUBE_IMAGE_PULL_POLICY": "Sometimes"},
        {"MLKUBE_ROUTER_REPLICAS": "zero"},
        {"MLKUBE_ROUTER_REPLICAS": "0"},
        {"MLKUBE_RUN_AS_USER": "0"},  # root would break runAsNonRoot
        {"MLKUBE_GATEWAY": "a/b/c/d"},
        {"MLKUBE_GATEWAY": "ns/"},
        {"MLKUBE_GATEWAY": "Infra/public"},  # parts the API server would refuse on every apply
        {"MLKUBE_GATEWAY": "infra.x/public"},
        {"MLKUBE_GATEWAY": "infra/pub_lic"},
        {"MLKUBE_GATEWAY": "infra/public/http-"},
        {"MLKUBE_GATEWAY": "infra/public/a..b"},
        {"MLKUBE_GATEWAY_GRPC_SECTION": "grpc"},  # a listener of no default Gateway
        {"MLKUBE_GATEWAY": "infra/public/https", "MLKUBE_GATEWAY_GRPC_SECTION": "https"},
        {"MLKUBE_GATEWAY": "infra/public", "MLKUBE_GATEWAY_GRPC_SECTION": "gRPC"},
        {"MLKUBE_GATEWAY": "infra/public", "MLKUBE_GATEWAY_GRPC_SECTION": "grpc."},
    ],
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(OperatorConfigError):
        parse_operator_config(env)


def test_the_default_gateways_grpc_listener() -> None:
    env = {"MLKUBE_GATEWAY": "infra/public/https", "MLKUBE_GATEWAY_GRPC_SECTION": " grpc "}
    config = parse_operator_config(env)
    assert config.default_grpc_section == "grpc"
    assert config.default_gateway == GatewayParent("public", "infra", "https")
    assert parse_operator_config({"MLKUBE_GATEWAY": "infra/public"}).default_grpc_section is None
    dotted = {"MLKUBE_GATEWAY": "infra/public", "MLKUBE_GATEWAY_GRPC_SECTION": "grpc.public"}
    assert parse_operator_config(dotted).default_grpc_section == "grpc.public"


def test_parse_gateway_forms() -> None:
    assert parse_gateway("public") == GatewayParent(name="public")
    assert parse_gateway("infra/gw.public/grpc.x") == GatewayParent("gw.public", "infra", "grpc.x")
    assert parse_gateway("infra/public") == GatewayParent(name="public", namespace="infra")


def _model(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "credit-risk-v3", "generation": 1},
        "spec": {
            "modelName": "credit-risk",
            "version": "3",
            "framework": "custom",
            "artifact": {"uri": "s3://b/m"},
            "entrypoint": {"path": "score.py"},
        },
        "status": status,
    }


READY = {
    "phase": "Ready",
    "observedGeneration": 1,
    "artifact": {"digest": DIGEST},
    "conditions": [{"type": "Ready", "status": "True"}],
}


def test_ready_model_facts() -> None:
    assert read_model("credit-risk-v3", _model(**READY)) == ModelFacts(
        name="credit-risk-v3",
        model_name="credit-risk",
        version="3",
        framework="custom",
        uri="s3://b/m",
        digest=DIGEST,
        entrypoint="score.py",
    )


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (None, "ModelNotFound"),
        (_model(), "ModelNotReady"),
        (_model(phase="Verifying"), "ModelNotReady"),
        (_model(**{**READY, "observedGeneration": 0}), "ModelNotReady"),  # stale status
        (_model(**{**READY, "artifact": {}}), "ModelNotReady"),  # no verified digest
        (_model(phase="Failed", message="digest mismatch"), "ModelFailed"),
    ],
)
def test_unservable_models(obj: dict[str, Any] | None, reason: str) -> None:
    problem = read_model("credit-risk-v3", obj)
    assert isinstance(problem, ModelProblem)
    assert problem.reason == reason
    assert "credit-risk-v3" in problem.message
