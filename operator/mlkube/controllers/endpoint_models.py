"""An endpoint's Models: read their verified facts, keep their `status.deployedBy` current.

`deployedBy` is written with the Model's resourceVersion as a precondition and retried on
409, so two endpoints adding themselves at once never lose one another's reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from mlkube.builders.endpoint_status import Blocker
from mlkube.builders.model_facts import ModelFacts, ModelProblem, read_model
from mlkube.contract import API_VERSION, KIND_MODEL
from mlkube.controllers.errors import EndpointSyncError
from mlkube.controllers.kube import ApiError, Kube
from mlkube.reconcile.endpoint_changes import endpoint_reference, with_reference

CONFLICT_RETRIES: Final = 5


def read_models(
    kube: Kube, namespace: str, names: Iterable[str]
) -> tuple[dict[str, ModelFacts], list[Blocker]]:
    models: dict[str, ModelFacts] = {}
    blockers = []
    for model in sorted(names):
        found = read_model(model, kube.get(API_VERSION, KIND_MODEL, model, namespace))
        if isinstance(found, ModelProblem):
            blockers.append(
                Blocker(found.reason, found.message, degraded=found.reason == "ModelFailed")
            )
        else:
            models[model] = found
    return models, blockers


def sync_model_references(kube: Kube, namespace: str, endpoint: str, referenced: set[str]) -> None:
    """Make every Model's `status.deployedBy` list this endpoint exactly when it uses the Model."""
    ref = endpoint_reference(endpoint, namespace)
    for model in kube.list(API_VERSION, KIND_MODEL, namespace):
        name = model["metadata"]["name"]
        refs = (model.get("status") or {}).get("deployedBy") or []
        if with_reference(refs, ref, name in referenced) is not None:
            update_deployed_by(kube, namespace, name, ref, name in referenced, model)


def update_deployed_by(
    kube: Kube,
    namespace: str,
    name: str,
    ref: dict[str, str],
    present: bool,
    model: dict[str, Any] | None,
) -> None:
    """Add or remove `ref`, guarded by resourceVersion so concurrent endpoints never lose one."""
    for _ in range(CONFLICT_RETRIES):
        if model is None:
            return
        refs = (model.get("status") or {}).get("deployedBy") or []
        new = with_reference(refs, ref, present)
        if new is None:
            return
        body = {
            "metadata": {"resourceVersion": model["metadata"]["resourceVersion"]},
            "status": {"deployedBy": new},
        }
        try:
            kube.patch(API_VERSION, KIND_MODEL, name, body, namespace, subresource="status")
            return
        except ApiError as err:
            if err.status == 404:
                return
            if err.status != 409:
                raise
        model = kube.get(API_VERSION, KIND_MODEL, name, namespace)
    raise EndpointSyncError(f"Model {namespace}/{name}: deployedBy kept conflicting; will retry")
