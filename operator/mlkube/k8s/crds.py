"""Install the generated CRDs and wait until the API server serves them."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from mlkube.k8s.client import Kube
from mlkube.k8s.errors import ApiError


def apply_crds(
    kube: Kube, crd_dir: Path, field_manager: str = "mlkube-install", timeout: float = 30.0
) -> list[str]:
    """Server-side apply every `mlkube.dev_*.yaml` in crd_dir; return the CRD names."""
    names = []
    for path in sorted(crd_dir.glob("mlkube.dev_*.yaml")):
        doc = yaml.safe_load(path.read_text())
        kube.apply(doc, field_manager=field_manager)
        names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while not established(kube, name):
            if time.monotonic() > deadline:
                raise ApiError(504, "Timeout", f"CRD {name} not Established after {timeout}s")
            time.sleep(0.1)
    return names


def established(kube: Kube, name: str) -> bool:
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (crd.get("status") or {}).get("conditions") or []
    )
