"""What a Pipeline names outside itself, and whether it exists (the Pipeline's Ready).

Models given as step inputs, the OnlineEndpoints of deploy steps and evaluate comparisons, the
BatchEndpoints of batch steps, and an artifact store for container steps (their outputs and
cache entries go there). onDrift endpoints are checked by the trigger itself
(controllers/pipeline_triggers.py), which needs the object anyway. One GET per distinct name;
the endpoints read are handed back so the triggers do not read them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlkube.api.pipeline import PipelineSpec
from mlkube.builders.pipeline_conditions import Problem
from mlkube.contract import API_VERSION, KIND_BATCH_ENDPOINT, KIND_MODEL, KIND_ONLINE_ENDPOINT
from mlkube.controllers.kube import Kube


@dataclass
class Objects:
    """Objects read during one pass, by (kind, name); None = does not exist."""

    kube: Kube
    namespace: str
    found: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        key = (kind, name)
        if key not in self.found:
            self.found[key] = self.kube.get(API_VERSION, kind, name, self.namespace)
        return self.found[key]


def named_objects(spec: PipelineSpec) -> list[tuple[str, str, str]]:
    """(kind, name, who names it) for every object the steps name, in step order."""
    named: list[tuple[str, str, str]] = []
    for step in spec.steps:
        who = f"step {step.name}"
        named += [(KIND_MODEL, i.model, f"{who} input {i.name}") for i in step.inputs if i.model]
        if step.deploy is not None:
            named.append((KIND_ONLINE_ENDPOINT, step.deploy.endpoint, who))
        if step.evaluate is not None and step.evaluate.compare_with is not None:
            named.append((KIND_ONLINE_ENDPOINT, step.evaluate.compare_with.endpoint, who))
        if step.batch is not None:
            named.append((KIND_BATCH_ENDPOINT, step.batch.endpoint, who))
    return named


def reference_problems(
    objects: Objects, spec: PipelineSpec, artifact_store: str | None
) -> list[Problem]:
    problems = []
    for kind, name, who in named_objects(spec):
        if objects.get(kind, name) is None:
            problems.append(Problem(f"{kind}NotFound", f"{who}: {kind} {name} does not exist"))
    containers = [s.name for s in spec.steps if s.type == "container"]
    if containers and not artifact_store:
        problems.append(
            Problem(
                "NoArtifactStore",
                f"container steps ({', '.join(containers[:3])}) need an artifact store: set"
                " spec.artifactStore, or the operator setting MLKUBE_ARTIFACT_STORE",
            )
        )
    return problems
