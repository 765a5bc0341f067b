"""The `evaluate` built-in step: read the metrics and the serving Model's baseline, decide.

The decision is pure (reconcile/pipeline_gate.py); this module only reads: upstream metrics
from the run, and for `compareWith` the endpoint → its serving deployment (named, or the one
with the most live traffic) → that deployment's Model → `spec.lineage.metrics[metric]`. When
that Model registers one of the artifacts the compared step produced, the candidate is already
serving (a rerun after its own canary took all live traffic): there is nothing to beat, so no
baseline, said so, instead of comparing the model with itself. It writes nothing, so calling
it again is harmless. A failed gate is a Failed step (reason
GateFailed): its dependents do not run; `continueOnFailure: true` keeps the run Succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mlkube.api.pipeline_step import CompareWith, EvaluateStep
from mlkube.builders.pipeline_deploy import serving_deployment
from mlkube.builders.pipeline_outcome import BuiltinOutcome, Done, Failed, StepOutput, StepResult
from mlkube.builders.pipeline_register import registered_digest
from mlkube.contract import API_VERSION, KIND_MODEL, KIND_ONLINE_ENDPOINT
from mlkube.controllers.kube import Kube
from mlkube.reconcile.pipeline_gate import evaluate_gate


def _baseline(
    kube: Kube, namespace: str, compare: CompareWith, candidate: set[str]
) -> tuple[float | None, str, str] | Failed:
    """(baseline value or None, what was compared with, why there is no baseline if so);
    Failed for a missing endpoint or named deployment. No live traffic, no Model, no such
    metric, or the candidate itself serving → no baseline."""
    endpoint = kube.get(API_VERSION, KIND_ONLINE_ENDPOINT, compare.endpoint, namespace)
    if endpoint is None:
        return Failed(
            f"compareWith: OnlineEndpoint {compare.endpoint} not found", "EndpointNotFound"
        )
    spec = endpoint.get("spec") or {}
    deployment = serving_deployment(spec, compare.deployment)
    if deployment is None:
        if compare.deployment:
            return Failed(
                f"compareWith: endpoint {compare.endpoint} has no deployment {compare.deployment}",
                "DeploymentNotFound",
            )
        return None, "", f"endpoint {compare.endpoint} serves no live traffic"
    model_name = next(
        str(d.get("model")) for d in spec.get("deployments") or [] if d.get("name") == deployment
    )
    label = f"serving {model_name} ({compare.endpoint}/{deployment})"
    model = kube.get(API_VERSION, KIND_MODEL, model_name, namespace)
    digest = registered_digest(model or {})
    if digest is not None and digest in candidate:
        return None, label, f"{label} is this candidate: the same artifact {digest}"
    metrics = (((model or {}).get("spec") or {}).get("lineage") or {}).get("metrics") or {}
    value = metrics.get(compare.metric)
    return (float(value) if value is not None else None), label, ""


def evaluate(
    kube: Kube,
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    upstream: Mapping[str, StepResult],
) -> BuiltinOutcome:
    try:
        spec = EvaluateStep.model_validate(step.get("evaluate") or {})
    except ValidationError as err:
        return Failed(f"evaluate {step.get('name')}: {err}", "InvalidStep")
    namespace = str((run.get("metadata") or {}).get("namespace") or "default")
    baseline, label, why = None, "", ""
    if spec.compare_with is not None:
        producer = upstream.get(spec.compare_with.from_.step)
        candidate = {
            o.digest
            for o in (producer.outputs.values() if producer else ())
            if o.type == "artifact"
        }
        found = _baseline(kube, namespace, spec.compare_with, {d for d in candidate if d})
        if isinstance(found, Failed):
            return found
        baseline, label, why = found
    metrics = {name: dict(result.metrics) for name, result in upstream.items()}
    result = evaluate_gate(spec, metrics, baseline, label, why)
    if not result.passed:
        return Failed(f"gate failed: {result.message}", "GateFailed")
    checked = {m.name: metrics[m.from_.step][m.name] for m in spec.metrics}
    if spec.compare_with is not None:
        source = spec.compare_with
        checked[source.metric] = metrics[source.from_.step][source.metric]
    return Done(
        f"gate passed: {result.message}",
        outputs=(StepOutput("passed", "parameter", value="true"),),
        metrics=checked,
    )
