"""The serving image variants behind the curated environments are packaged consistently: each
curated variant has its pyproject extra, the Dockerfile's VARIANT accepts it, hack/images/build
has a target for it, and the extras hold exactly the full `serving` set between them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mlkube.environments.curated import CURATED

ROOT = Path(__file__).resolve().parents[3]
EXTRAS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]


def closure(extra: str) -> set[str]:
    """Distribution names an extra installs, following `mlkube[...]` references."""
    names: set[str] = set()
    for requirement in EXTRAS[extra]:
        inner = re.fullmatch(r"mlkube\[(.+)\]", requirement)
        if inner:
            for part in inner.group(1).split(","):
                names |= closure(part.strip())
        else:
            names.add(re.split(r"[<>=\[;]", requirement, maxsplit=1)[0].lower())
    return names


def test_every_curated_variant_has_an_extra_a_dockerfile_case_and_a_build_target() -> None:
    dockerfile = (ROOT / "serving-image/Dockerfile").read_text()
    build = (ROOT / "hack/images/build").read_text()
    case = re.search(r"^\s*([a-z|]+)\) extra=\"serving-\$VARIANT\"", dockerfile, re.MULTILINE)
    assert case is not None
    for environment in CURATED.values():
        assert f"serving-{environment.variant}" in EXTRAS
        assert environment.variant in case.group(1).split("|")
        assert f"serving-{environment.variant}" in build


def test_variants_leave_out_the_other_runtime() -> None:
    assert "onnxruntime" not in closure("serving-sklearn")
    assert {"scikit-learn", "joblib", "skl2onnx"}.isdisjoint(closure("serving-onnx"))
    assert {"scikit-learn", "onnxruntime", "skl2onnx"} <= closure("serving-mlflow")


def test_the_full_serving_extra_is_the_mlflow_variant() -> None:
    # the default image (VARIANT=all) and the tests install `serving`: it must not drift
    # from what the variants install together
    assert closure("serving") == closure("serving-mlflow")
