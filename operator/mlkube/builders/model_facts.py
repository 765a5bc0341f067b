"""What an endpoint needs to know about a Model it serves, and whether it can serve it yet.

A deployment may only start from an artifact whose digest the operator verified: the storage
initializer re-checks the download against `status.artifact.digest`, so a changed object in
the bucket fails the pod instead of silently serving different weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelFacts:
    """A Ready Model, reduced to what the serving Deployment is built from."""

    name: str  # the Model object's name
    model_name: str
    version: str
    framework: str
    uri: str
    digest: str
    entrypoint: str | None = None
    baseline_uri: str | None = None  # drift baseline profile (spec.baseline), if registered
    baseline_digest: str | None = None
    size: int | None = None  # verified artifact bytes (status.artifact.size), sizes the volume


@dataclass(frozen=True)
class ModelProblem:
    """Why a referenced Model cannot be served yet (the endpoint waits, it does not fail)."""

    name: str
    reason: str  # ModelNotFound | ModelNotReady | ModelFailed
    message: str


def _is_ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def read_model(name: str, obj: dict[str, Any] | None) -> ModelFacts | ModelProblem:
    """Facts of a Ready Model, else the problem that blocks it."""
    if obj is None:
        return ModelProblem(name, "ModelNotFound", f"Model {name} does not exist")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if status.get("phase") == "Failed":
        detail = status.get("message") or "verification failed"
        return ModelProblem(name, "ModelFailed", f"Model {name} failed: {detail}")
    digest = (status.get("artifact") or {}).get("digest")
    current = generation is None or status.get("observedGeneration") == generation
    if not (_is_ready(status) and digest and current):
        phase = status.get("phase") or "Pending"
        return ModelProblem(name, "ModelNotReady", f"Model {name} is not Ready yet ({phase})")
    entrypoint = (spec.get("entrypoint") or {}).get("path")
    baseline = spec.get("baseline") or {}
    return ModelFacts(
        name=name,
        model_name=str(spec.get("modelName", name)),
        version=str(spec.get("version", "")),
        framework=str(spec.get("framework", "")),
        uri=str((spec.get("artifact") or {}).get("uri", "")),
        digest=str(digest),
        entrypoint=str(entrypoint) if entrypoint else None,
        baseline_uri=str(baseline["uri"]) if baseline.get("uri") else None,
        baseline_digest=str(baseline["digest"]) if baseline.get("digest") else None,
        size=_artifact_size(status),
    )


def _artifact_size(status: dict[str, Any]) -> int | None:
    size = (status.get("artifact") or {}).get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
