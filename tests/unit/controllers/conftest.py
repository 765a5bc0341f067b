"""A fake cluster holding the two verified Models the sample endpoint serves."""

from __future__ import annotations

import pytest

from mlkube.builders.operator_config import OperatorConfig
from support.cluster_objects import model_obj
from support.fake_kube import FakeKube


@pytest.fixture
def fake() -> FakeKube:
    kube = FakeKube()
    kube.put(model_obj("credit-risk-v3"))
    kube.put(model_obj("credit-risk-v4"))
    return kube


@pytest.fixture
def config() -> OperatorConfig:
    return OperatorConfig(serving_image="registry.example/mlkube-serving:1.2.3")
