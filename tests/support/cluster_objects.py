"""Sample Model and OnlineEndpoint objects as the API server returns them, for controller tests."""

from __future__ import annotations

from typing import Any

from mlkube.contract import API_VERSION

NS = "ml"
NOW = "2026-01-01T12:00:00Z"
DIGEST = "sha256:" + "3" * 64


def model_obj(name: str, *, phase: str = "Ready") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {
            "modelName": "credit-risk",
            "version": name.rsplit("v", 1)[-1],
            "framework": "onnx",
            "artifact": {"uri": f"s3://models/{name}", "digest": DIGEST},
        },
        "status": {
            "phase": phase,
            "observedGeneration": 1,
            "artifact": {"digest": DIGEST},
            "conditions": [{"type": "Ready", "status": "True" if phase == "Ready" else "False"}],
        },
    }


def endpoint_obj(name: str = "credit", **spec: Any) -> dict[str, Any]:
    body = {
        "deployments": [
            {"name": "blue", "model": "credit-risk-v3", "replicas": 1},
            {"name": "green", "model": "credit-risk-v4", "replicas": 1},
        ],
        "traffic": {"blue": 70, "green": 30},
    }
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "OnlineEndpoint",
        "metadata": {"name": name, "namespace": NS},
        "spec": body,
    }
