"""The curated environments mlkube ships (docs/environments.md §6): the serving image's variants.

`mlkube-sklearn`, `mlkube-onnx` and `mlkube-mlflow` are versioned with mlkube itself (an
operator of version 0.1.0 offers `mlkube-sklearn:0.1.0`), so a base named by a curated
reference always carries the serving entrypoint this operator's deployments expect. Their
images come from the operator config (`MLKUBE_CURATED_ENVIRONMENTS`, the chart's
`curatedEnvironments`); otherwise they are derived from the serving image by the naming
convention of the release and `hack/images/build`: repository `<serving repository>-<variant>`,
same tag (`ghcr.io/mlkube/mlkube-serving:0.1.0` → `ghcr.io/mlkube/mlkube-serving-onnx:0.1.0`).
A serving image pinned only by digest derives nothing: such curated environments say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mlkube import __version__
from mlkube.contract import CURATED_ENVIRONMENT_PREFIX

CURATED_PREFIX: Final = CURATED_ENVIRONMENT_PREFIX
VERSION: Final = __version__


class CuratedError(ValueError):
    """A reference to a curated environment this operator does not ship (or has no image for)."""


@dataclass(frozen=True)
class CuratedEnvironment:
    name: str
    variant: str  # serving-image/Dockerfile VARIANT
    frameworks: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class CuratedImage:
    """One curated environment as this operator offers it."""

    environment: CuratedEnvironment
    version: str
    image: str | None  # None: not configured and not derivable
    source: str  # "configured" | "derived" | "unavailable"

    @property
    def reference(self) -> str:
        return f"{self.environment.name}:{self.version}"


CURATED: Final[dict[str, CuratedEnvironment]] = {
    e.name: e
    for e in (
        CuratedEnvironment(
            "mlkube-sklearn", "sklearn", ("sklearn", "custom"),
            "scikit-learn models, scoring scripts and Seldon classes (no ONNX runtime)",
        ),
        CuratedEnvironment(
            "mlkube-onnx", "onnx", ("onnx", "custom"),
            "ONNX models on onnxruntime, scoring scripts and Seldon classes (no scikit-learn)",
        ),
        CuratedEnvironment(
            "mlkube-mlflow", "mlflow", ("mlflow", "sklearn", "onnx", "custom"),
            "MLflow model directories (sklearn and onnx flavors) plus both runtimes",
        ),
    )
}  # fmt: skip


def curated_names() -> list[str]:
    return sorted(CURATED)


def is_curated(reference: str) -> bool:
    """A `mlkube-…` name (reserved: Environment objects may not use it)."""
    return reference.startswith(CURATED_PREFIX)


def derived_image(serving_image: str, variant: str) -> str | None:
    """`<repository>-<variant>[:tag]` of the serving image; None when it is pinned by digest."""
    if "@" in serving_image:
        return None
    slash = serving_image.rfind("/")
    colon = serving_image.rfind(":")
    if colon > slash:
        return f"{serving_image[:colon]}-{variant}{serving_image[colon:]}"
    return f"{serving_image}-{variant}"


def curated_image(
    environment: CuratedEnvironment, serving_image: str, configured: Mapping[str, str]
) -> CuratedImage:
    if environment.name in configured:
        return CuratedImage(environment, VERSION, configured[environment.name], "configured")
    image = derived_image(serving_image, environment.variant)
    return CuratedImage(environment, VERSION, image, "derived" if image else "unavailable")


def catalogue(serving_image: str, configured: Mapping[str, str]) -> list[CuratedImage]:
    """Every curated environment with its image (`mlkube env list --curated`)."""
    return [curated_image(CURATED[name], serving_image, configured) for name in curated_names()]


def resolve_curated(
    reference: str, serving_image: str, configured: Mapping[str, str]
) -> CuratedImage:
    """`mlkube-sklearn:0.1.0` (or `mlkube-sklearn`, `mlkube-sklearn@latest`: this operator's
    version) → its image; CuratedError naming what is offered otherwise."""
    name, sep, version = reference.partition(":")
    if not sep:
        name = name.removesuffix("@latest")
    offered = ", ".join(f"{n}:{VERSION}" for n in curated_names())
    environment = CURATED.get(name)
    if environment is None:
        raise CuratedError(f"{reference!r} is not a curated environment (offered: {offered})")
    if sep and version != VERSION:
        raise CuratedError(
            f"{reference!r}: this operator (mlkube {VERSION}) ships {name}:{VERSION}; curated "
            "environments are versioned with mlkube"
        )
    found = curated_image(environment, serving_image, configured)
    if found.image is None:
        raise CuratedError(
            f"{found.reference} has no image: the serving image {serving_image} is pinned by "
            f"digest, so set MLKUBE_CURATED_ENVIRONMENTS (chart value curatedEnvironments)"
        )
    return found
