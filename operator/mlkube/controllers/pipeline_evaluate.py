"""The `evaluate` built-in step: read the metrics and the serving Model's baseline, decide.

The decision is pure (reconcile/pipeline_gate.py); this module only reads: upstream metrics
from the run, and for `compareWith` the endpoint → its serving deployment (named, or the one
with the most traffic) → that deployment's Model → `spec.lineage.metrics[metric]`. It writes
nothing, so calling it again is harmless. A failed gate is a Failed step (reason GateFailed):
its dependents do not run; `continueOnFailure: true` on the step keeps the run Succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlkube.builders.pipeline_outcome import BuiltinOutcome, Done, Failed, StepOutput, StepResult
from mlkube.contract import API_VERSION, KIND_MODEL, KIND_ONLINE_ENDPOINT
from mlkube.controllers.kube import Kube
from mlkube.reconcile.pipeline_gate import (
    Comparison,
    Threshold,
    decide,
    serving_deployment,
)


def _metric(
    upstream: Mapping[str, StepResult], source: Mapping[str, Any], name: str
) -> float | None:
    result = upstream.get(str(source.get("step") or ""))
    if result is None or name not in result.metrics:
        return None
    return float(result.metrics[name])


def _baseline(
    kube: Kube, namespace: str, compare: Mapping[str, Any]
) -> tuple[float | None, str] | Failed:
    """(baseline value or None, what it is or why there is none); Failed for a missing endpoint."""
    endpoint_name = str(compare.get("endpoint"))
    endpoint = kube.get(API_VERSION, KIND_ONLINE_ENDPOINT, endpoint_name, namespace)
    if endpoint is None:
        return Failed(f"compareWith: OnlineEndpoint {endpoint_name} not found", "EndpointNotFound")
    spec = endpoint.get("spec") or {}
    named = compare.get("deployment")
    deployment = serving_deployment(spec, str(named) if named else None)
    if deployment is None:
        if named:
            return Failed(
                f"compareWith: endpoint {endpoint_name} has no deployment {named}",
                "DeploymentNotFound",
            )
        return None, f"endpoint {endpoint_name} has no deployment with live traffic"
    model_name = next(
        str(d.get("model")) for d in spec.get("deployments") or [] if d.get("name") == deployment
    )
    where = f"Model {model_name} on {endpoint_name}/{deployment}"
    model = kube.get(API_VERSION, KIND_MODEL, model_name, namespace)
    if model is None:
        return None, f"{where} does not exist"
    metrics = ((model.get("spec") or {}).get("lineage") or {}).get("metrics") or {}
    metric = str(compare.get("metric"))
    if metric not in metrics:
        return None, f"{where} has no lineage metric {metric}"
    return float(metrics[metric]), where


def evaluate(
    kube: Kube,
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    upstream: Mapping[str, StepResult],
) -> BuiltinOutcome:
    config = step.get("evaluate") or {}
    namespace = str((run.get("metadata") or {}).get("namespace") or "default")
    thresholds = [
        Threshold(
            metric=str(m.get("name")),
            source=str((m.get("from") or {}).get("step")),
            value=_metric(upstream, m.get("from") or {}, str(m.get("name"))),
            minimum=m.get("min"),
            maximum=m.get("max"),
        )
        for m in config.get("metrics") or []
    ]
    comparison = None
    compare = config.get("compareWith")
    if compare:
        found = _baseline(kube, namespace, compare)
        if isinstance(found, Failed):
            return found
        baseline, serving = found
        metric = str(compare.get("metric"))
        comparison = Comparison(
            metric=metric,
            source=str((compare.get("from") or {}).get("step")),
            value=_metric(upstream, compare.get("from") or {}, metric),
            baseline=baseline,
            serving=serving,
            higher_is_better=bool(compare.get("higherIsBetter", True)),
            min_improvement=float(compare.get("minImprovement") or 0),
        )
    verdict = decide(thresholds, comparison)
    if not verdict.passed:
        return Failed(verdict.message, "GateFailed")
    checked = {t.metric: t.value for t in thresholds if t.value is not None}
    if comparison is not None and comparison.value is not None:
        checked[comparison.metric] = comparison.value
    return Done(
        verdict.message, outputs=(StepOutput("passed", "parameter", value="true"),), metrics=checked
    )
