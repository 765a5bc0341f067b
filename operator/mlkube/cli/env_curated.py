"""`mlkube env list --curated` and the default base of `env create`: the curated environments
mlkube ships (docs/environments.md §6), versioned with mlkube.

The catalogue is built in; the images are the catalogue's unless `MLKUBE_CURATED_ENVIRONMENTS`
(`name=image,…`, the operator's setting, e.g. from `mlkube dev env`) names others, so the
list shows what a cluster configured that way uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from mlkube import __version__
from mlkube.cli.errors import CliError

ENV_CURATED: Final = "MLKUBE_CURATED_ENVIRONMENTS"
_FRAMEWORKS: Final = (
    ("mlkube-sklearn", ("sklearn", "custom"), "scikit-learn runtime and scoring scripts"),
    ("mlkube-onnx", ("onnx",), "ONNX Runtime"),
    ("mlkube-mlflow", ("mlflow", "sklearn", "onnx", "custom"),
     "scikit-learn + ONNX runtimes + the MLflow pyfunc loader"),
)  # fmt: skip
DEFAULT_BASE: Final = f"mlkube-sklearn:{__version__}"
MLFLOW_BASE: Final = f"mlkube-mlflow:{__version__}"


def default_image(name: str) -> str:
    variant = name.removeprefix("mlkube-")
    return f"ghcr.io/mlkube/serving:{__version__}-{variant}"


def parse_overrides(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, image = item.partition("=")
        if not (sep and name.strip() and image.strip()):
            raise CliError(f"{ENV_CURATED}: {item!r} must look like name=image")
        out[name.strip()] = image.strip()
    return out


def catalogue(environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    overrides = parse_overrides((os.environ if environ is None else environ).get(ENV_CURATED, ""))
    return [{"name": name, "version": __version__, "frameworks": list(frameworks),
             "description": about, "image": overrides.get(name, default_image(name))}
            for name, frameworks, about in _FRAMEWORKS]  # fmt: skip
