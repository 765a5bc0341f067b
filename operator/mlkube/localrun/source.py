"""Where a local plan comes from: the OnlineEndpoint's spec, rebuilt here by the builders.

`run-local` used to copy whatever Deployment carried the endpoint's label, so anyone able to
create a Deployment in the namespace chose the artifact, the digest (or none) and the env of
processes on the user's laptop. Now only the endpoint spec and its Models' verified status are
read; the same builders the operator uses produce the manifests and `plan_local` reads those.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children, uses_router
from mlkube.builders.endpoint_router import read_keys
from mlkube.builders.model_facts import ModelFacts, ModelProblem, read_model
from mlkube.builders.names import EndpointRef, keys_secret_name
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.localrun.plan import LocalPlan, PlanError, plan_local


class Reader(Protocol):
    """The one API call a plan needs (mlkube.k8s.Kube provides it)."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None: ...


def plan_from_cluster(kube: Reader, namespace: str, name: str) -> LocalPlan:
    """The local plan of endpoint `namespace/name`, from its spec and Ready Models only."""
    obj = kube.get(API_VERSION, "OnlineEndpoint", name, namespace)
    if obj is None:
        raise PlanError(f"OnlineEndpoint {namespace}/{name} not found")
    try:
        spec = OnlineEndpointSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        raise PlanError(f"invalid spec: {err}") from err
    if not uses_router(spec):
        raise PlanError("only router-backed endpoints run locally")
    models: dict[str, ModelFacts] = {}
    for model in sorted({d.model for d in spec.deployments}):
        found = read_model(model, kube.get(API_VERSION, "Model", model, namespace))
        if isinstance(found, ModelProblem):
            # Ready means the operator verified the artifact and recorded its digest.
            raise PlanError(f"{found.message}: run-local serves only verified Models")
        models[model] = found
    owner = EndpointRef(name=name, namespace=namespace, uid=str(obj["metadata"].get("uid", "")))
    keys: list[str] = []
    if spec.auth.mode == "key":
        secret = kube.get("v1", "Secret", keys_secret_name(name), namespace)
        if secret is not None and not _controlled_by(secret, owner.uid):
            raise PlanError(f"Secret {keys_secret_name(name)} is not this endpoint's keys Secret")
        keys = read_keys(secret)
        if not keys:
            raise PlanError("the endpoint has no API keys yet (the operator creates them)")
    children = build_endpoint_children(owner, spec, models, OperatorConfig(), keys)
    return plan_local(children)


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == uid for r in refs)
