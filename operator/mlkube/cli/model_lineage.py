"""Where `mlkube model lineage` reads from: Models, PipelineRuns and run spec snapshots.

The walk itself is pure (cli/model_lineage_view.py); this adapter is the only part that talks
to the API, through the model CLI's client and its error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlkube.cli.kube import ModelApi
from mlkube.contract import API_VERSION, KIND_PIPELINE_RUN


@dataclass
class ApiLookup:
    api: ModelApi

    def model(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.api.get(namespace, name)

    def run(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.api.get_related(API_VERSION, KIND_PIPELINE_RUN, namespace, name)

    def snapshot(self, namespace: str, run: str) -> Mapping[str, Any] | None:
        return self.api.get_related("v1", "ConfigMap", namespace, f"{run}-spec")
