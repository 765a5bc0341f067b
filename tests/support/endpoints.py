"""Helpers for OnlineEndpoint integration tests: Ready Models, endpoint objects, polling."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.waiting import wait_for


def make_artifact(folder: Path, content: str) -> str:
    """A small file:// artifact (the operator verifies it in-process)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(hashlib.sha256(content.encode()).digest() * 8)
    return folder.as_uri()


def model_object(name: str, namespace: str, uri: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "modelName": "credit-risk",
            "version": version,
            "framework": "sklearn",
            "artifact": {"uri": uri},
        },
    }


def endpoint_object(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "OnlineEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def blue_green_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deployments": [
            {"name": "blue", "model": "credit-risk-v3", "replicas": 2},
            {"name": "green", "model": "credit-risk-v4", "replicas": 1},
        ],
        "traffic": {"blue": 70, "green": 30},
    }
    spec.update(overrides)
    return spec


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), {})


def create_ready_models(kube: Kube, namespace: str, tmp: Path) -> dict[str, str]:
    """credit-risk-v3 and credit-risk-v4, verified by the running operator; name -> digest."""
    for version in ("3", "4"):
        uri = make_artifact(tmp / f"v{version}", f"weights {version}")
        kube.create(model_object(f"credit-risk-v{version}", namespace, uri, version))
    digests = {}
    for name in ("credit-risk-v3", "credit-risk-v4"):
        obj = wait_for(
            lambda n=name: _ready(kube.get(API_VERSION, "Model", n, namespace)),
            timeout=20,
            interval=0.05,
            what=f"Model {name} Ready",
        )
        digests[name] = obj["status"]["artifact"]["digest"]
    return digests


def _ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    return obj if condition(obj, "Ready").get("status") == "True" else None


def wait_endpoint_ready(
    kube: Kube, namespace: str, name: str, timeout: float = 30
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "OnlineEndpoint", name, namespace)
        gen = (obj or {}).get("metadata", {}).get("generation")
        status = (obj or {}).get("status") or {}
        ok = condition(obj, "Ready").get("status") == "True"
        return obj if ok and status.get("observedGeneration") == gen else None

    result: dict[str, Any] = wait_for(
        ready, timeout=timeout, interval=0.05, what=f"OnlineEndpoint {name} Ready"
    )
    return result


def is_subset(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` differs from `expected` (ignoring what the API server added)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems.extend(is_subset(value, actual[key], f"{path}.{key}"))
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [p for i, v in enumerate(expected) for p in is_subset(v, actual[i], f"{path}[{i}]")]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def deployed_by(kube: Kube, namespace: str, model: str) -> list[dict[str, Any]]:
    obj = kube.get(API_VERSION, "Model", model, namespace) or {}
    refs: list[dict[str, Any]] = (obj.get("status") or {}).get("deployedBy") or []
    return refs
