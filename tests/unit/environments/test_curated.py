"""The curated catalogue (docs/environments.md §6): versioned with mlkube, images configured
or derived from the serving image."""

from __future__ import annotations

import pytest

import mlkube
from mlkube.environments.curated import (
    CURATED,
    CuratedError,
    catalogue,
    derived_image,
    is_curated,
    resolve_curated,
)

SERVING = "ghcr.io/mlkube/mlkube-serving:0.1.0"


def test_three_variants_versioned_with_mlkube() -> None:
    entries = catalogue(SERVING, {})
    assert [e.reference for e in entries] == [
        f"mlkube-mlflow:{mlkube.__version__}",
        f"mlkube-onnx:{mlkube.__version__}",
        f"mlkube-sklearn:{mlkube.__version__}",
    ]
    assert {e.environment.variant for e in entries} == {"sklearn", "onnx", "mlflow"}
    assert "onnx" not in CURATED["mlkube-sklearn"].frameworks
    assert "sklearn" not in CURATED["mlkube-onnx"].frameworks
    assert {"mlflow", "sklearn", "onnx"} <= set(CURATED["mlkube-mlflow"].frameworks)


@pytest.mark.parametrize(
    ("serving", "expected"),
    [
        (SERVING, "ghcr.io/mlkube/mlkube-serving-onnx:0.1.0"),
        ("localhost:5000/mlkube-serving:3f2a", "localhost:5000/mlkube-serving-onnx:3f2a"),
        ("localhost:5000/mlkube-serving", "localhost:5000/mlkube-serving-onnx"),
        ("r/mlkube-serving@sha256:" + "a" * 64, None),
    ],
)
def test_images_derive_from_the_serving_repository(serving: str, expected: str | None) -> None:
    assert derived_image(serving, "onnx") == expected


def test_configured_images_win_over_derived_ones() -> None:
    entries = {e.environment.name: e for e in catalogue(SERVING, {"mlkube-onnx": "x/onnx:1"})}
    assert (entries["mlkube-onnx"].image, entries["mlkube-onnx"].source) == (
        "x/onnx:1",
        "configured",
    )
    assert entries["mlkube-sklearn"].source == "derived"


def test_resolve_by_version_latest_or_bare_name() -> None:
    version = mlkube.__version__
    for reference in (f"mlkube-sklearn:{version}", "mlkube-sklearn", "mlkube-sklearn@latest"):
        found = resolve_curated(reference, SERVING, {})
        assert found.image == "ghcr.io/mlkube/mlkube-serving-sklearn:0.1.0"


@pytest.mark.parametrize(
    ("reference", "serving", "message"),
    [
        ("mlkube-torch:0.1.0", SERVING, "not a curated environment .*mlkube-sklearn:"),
        ("mlkube-sklearn:9.9.9", SERVING, "versioned with mlkube"),
        ("mlkube-onnx", "r/s@sha256:" + "a" * 64, "set MLKUBE_CURATED_ENVIRONMENTS"),
    ],
)
def test_unresolvable_references_say_why(reference: str, serving: str, message: str) -> None:
    with pytest.raises(CuratedError, match=message):
        resolve_curated(reference, serving, {})


def test_reserved_prefix() -> None:
    assert is_curated("mlkube-sklearn:0.1.0") and not is_curated("lgbm:1")
