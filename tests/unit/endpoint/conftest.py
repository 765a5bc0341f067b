"""Shared inputs of the endpoint builder tests: the sample blue/green endpoint and its Models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig

DIGEST_V3 = "sha256:" + "3" * 64
DIGEST_V4 = "sha256:" + "4" * 64


@pytest.fixture
def owner() -> EndpointRef:
    return EndpointRef(name="credit", namespace="ml", uid="0f1e2d3c-uid")


@pytest.fixture
def config() -> OperatorConfig:
    return OperatorConfig(serving_image="registry.example/mlkube-serving:1.2.3")


@pytest.fixture
def models() -> dict[str, ModelFacts]:
    return {
        "credit-risk-v3": ModelFacts(
            name="credit-risk-v3",
            model_name="credit-risk",
            version="3",
            framework="sklearn",
            uri="s3://models/credit-risk/3",
            digest=DIGEST_V3,
        ),
        "credit-risk-v4": ModelFacts(
            name="credit-risk-v4",
            model_name="credit-risk",
            version="4",
            framework="onnx",
            uri="pvc://model-store/credit-risk/4",
            digest=DIGEST_V4,
        ),
    }


def spec_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "deployments": [
            {"name": "blue", "model": "credit-risk-v3", "replicas": 2},
            {
                "name": "green",
                "model": "credit-risk-v4",
                "autoscale": {"minReplicas": 1, "maxReplicas": 4, "targetConcurrency": 8},
                "requestSettings": {"timeoutSeconds": 10, "maxConcurrency": 16},
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
            },
        ],
        "traffic": {"blue": 70, "green": 30},
    }
    doc.update(overrides)
    return doc


SpecFactory = Callable[..., OnlineEndpointSpec]


@pytest.fixture
def make_spec() -> SpecFactory:
    """Build a spec from the sample with top-level fields replaced."""

    def make(**overrides: Any) -> OnlineEndpointSpec:
        return OnlineEndpointSpec.model_validate(spec_doc(**overrides))

    return make


@pytest.fixture
def spec(make_spec: SpecFactory) -> OnlineEndpointSpec:
    return make_spec()
