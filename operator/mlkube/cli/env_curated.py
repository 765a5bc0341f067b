"""`mlkube env list --curated` and the default bases of `env create` and MLflow models: the
curated environments mlkube ships (docs/environments.md §6, `mlkube.environments.curated`).

The images are the ones the operator would use with the settings in the CLI's environment:
`MLKUBE_CURATED_ENVIRONMENTS` (`name=image,…`, as in the operator's config) and
`MLKUBE_SERVING_IMAGE`, else the release's serving image, whose variants are named by
convention. The `imageSource` says which (configured | derived | unavailable).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from mlkube.builders.build_config import ENV_CURATED, BuildConfigError, parse_curated
from mlkube.builders.operator_config import DEFAULT_SERVING_IMAGE, ENV_SERVING_IMAGE
from mlkube.cli.errors import CliError
from mlkube.environments import curated

DEFAULT_BASE: Final = f"mlkube-sklearn:{curated.VERSION}"
MLFLOW_BASE: Final = f"mlkube-mlflow:{curated.VERSION}"


def catalogue(environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The curated environments with name, version, frameworks, description, image and
    where the image comes from (configured | derived | unavailable)."""
    env = os.environ if environ is None else environ
    try:
        configured = dict(parse_curated(env.get(ENV_CURATED, "")))
    except BuildConfigError as exc:
        raise CliError(str(exc)) from exc
    serving = env.get(ENV_SERVING_IMAGE) or DEFAULT_SERVING_IMAGE
    return [{"name": item.environment.name, "version": item.version,
             "frameworks": list(item.environment.frameworks),
             "description": item.environment.description, "image": item.image,
             "imageSource": item.source}
            for item in curated.catalogue(serving, configured)]  # fmt: skip
