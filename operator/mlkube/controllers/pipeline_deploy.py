"""The `deploy` built-in step: add the registered Model to an OnlineEndpoint, wait until Ready.

Level-based: when the endpoint already has the deployment serving this Model, an earlier call
applied it (or a person since changed the split on purpose): only readiness is checked.
Otherwise it server-side applies the deployment and the split (builders/pipeline_deploy.py)
with the endpoint's uid and resourceVersion as preconditions; a concurrent change answers 409
and the next call computes the split again from what is there then. The endpoint must exist:
a deploy step adds to an endpoint, it never creates one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.builders.pipeline_deploy import (
    DeployError,
    applied,
    apply_body,
    field_manager,
    new_deployment,
    readiness,
)
from mlkube.builders.pipeline_outcome import (
    BuiltinOutcome,
    Done,
    Failed,
    StepOutput,
    StepResult,
    Waiting,
)
from mlkube.builders.pipeline_register import model_object_name
from mlkube.contract import API_VERSION, KIND_MODEL, KIND_ONLINE_ENDPOINT
from mlkube.controllers.kube import ApiError, Kube

READY_POLL_SECONDS: Final = 3.0


def _model(
    kube: Kube, namespace: str, config: Mapping[str, Any], upstream: Mapping[str, StepResult]
) -> Mapping[str, Any] | Failed:
    source = str((config.get("model") or {}).get("step") or "")
    result = upstream.get(source)
    if result is None or result.phase != "Succeeded" or not result.produced_models:
        return Failed(f"step {source} registered no Model", "ModelNotRegistered")
    name = result.produced_models[0]
    model = kube.get(API_VERSION, KIND_MODEL, name, namespace)
    if model is None:
        return Failed(f"Model {name} registered by step {source} no longer exists", "ModelNotFound")
    return model


def deploy(
    kube: Kube,
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    upstream: Mapping[str, StepResult],
) -> BuiltinOutcome:
    config = step.get("deploy") or {}
    namespace = str((run.get("metadata") or {}).get("namespace") or "default")
    model = _model(kube, namespace, config, upstream)
    if isinstance(model, Failed):
        return model
    model_name = str(model["metadata"]["name"])
    spec = model.get("spec") or {}
    name = str(config.get("deployment") or model_object_name(spec["modelName"], spec["version"]))
    endpoint_name = str(config.get("endpoint"))
    endpoint = kube.get(API_VERSION, KIND_ONLINE_ENDPOINT, endpoint_name, namespace)
    if endpoint is None:
        return Failed(f"OnlineEndpoint {endpoint_name} not found", "EndpointNotFound")
    if not applied(endpoint.get("spec") or {}, name, model_name):
        deployment = new_deployment(
            endpoint.get("spec") or {}, name, model_name, config.get("runtime"),
            has_baseline=bool(spec.get("baseline")),
        )  # fmt: skip
        try:
            body = apply_body(
                endpoint, deployment, config.get("canaryWeight"), config.get("mirrorPercent")
            )
            endpoint = kube.apply(body, field_manager=field_manager(name))
        except DeployError as err:
            return Failed(f"deploy to {endpoint_name}: {err}", "DeployRefused")
        except ApiError as err:
            if err.status == 409:  # changed since it was read: compute the split again
                return Waiting(f"endpoint {endpoint_name} changed meanwhile; applying again", 0.5)
            if err.status == 422:
                return Failed(f"endpoint {endpoint_name} refused the change: {err}", "Invalid")
            raise
    missing = readiness(endpoint, name, model_name)
    if missing is not None:
        return Waiting(f"endpoint {endpoint_name}: {missing}", READY_POLL_SECONDS)
    share = _share(endpoint.get("spec") or {}, name)
    return Done(
        f"Model {model_name} serves on {endpoint_name}/{name} ({share})",
        outputs=(
            StepOutput("deployment", "parameter", value=name),
            StepOutput("endpoint", "parameter", value=endpoint_name),
        ),
    )


def _share(spec: Mapping[str, Any], name: str) -> str:
    if name in (spec.get("mirror") or {}):
        return f"mirror {spec['mirror'][name]}%"
    split = ", ".join(f"{k}={v}" for k, v in sorted((spec.get("traffic") or {}).items()))
    return f"traffic {split}"
