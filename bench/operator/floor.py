"""The floor `make bench-operator` compares the operator with: one process that does, as fast
as the API server accepts it, the least work that leaves the cluster as the operator does —
per endpoint i: create Model i and OnlineEndpoint i, write the Model's verified status,
server-side apply exactly the children the operator's builders produce for that endpoint
(build_endpoint_children with the operator's config), write the endpoint's Ready status.
Threads (`concurrency` requests in flight, one pooled connection each) over the mlkube client,
apply bodies as JSON. No discovery, no reads, no retries: a conflict or error fails the run.
The floor's run ends when every request returned ("applied"); the run also reports when the
Deployment controller, scheduler and kwok made every floor Deployment available ("available").
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import workload

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint import build_endpoint_children
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION
from mlkube.controllers.endpoint_children import generate_key
from mlkube.k8s import Kube

FIELD_MANAGER = "mlkube-floor"


def condition(type_: str, reason: str) -> dict[str, str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": type_, "status": "True", "reason": reason, "message": reason,
            "lastTransitionTime": now}  # fmt: skip


def children(
    obj: dict[str, Any], facts: ModelFacts, config: OperatorConfig
) -> list[dict[str, Any]]:
    """The operator's children of a created endpoint `obj` (uid known), the first pass's."""
    meta = obj["metadata"]
    spec = OnlineEndpointSpec.model_validate(obj["spec"])
    keys = [generate_key()] if spec.auth.mode == "key" else []
    owner = EndpointRef(meta["name"], meta["namespace"], meta["uid"])
    return build_endpoint_children(owner, spec, {facts.name: facts}, config, keys,
                                   push_key=generate_key())  # fmt: skip


def apply(kube: Kube, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    path = kube.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    kube.request("PATCH", path, body=json.dumps(obj), content_type="application/apply-patch+yaml",
                 query=[("fieldManager", FIELD_MANAGER), ("force", "true")])  # fmt: skip


def one(
    kube: Kube, i: int, uri: str, facts: tuple[str, int], config: OperatorConfig, ns: str
) -> int:
    """Endpoint i's whole floor; the number of requests it took."""
    digest, size = facts
    model = kube.create(workload.model(i, uri, ns), field_manager=FIELD_MANAGER)
    name = model["metadata"]["name"]
    artifact = {"uri": uri, "digest": digest, "size": size}
    kube.patch(API_VERSION, "Model", name, {"status": {
        "artifact": artifact, "conditions": [condition("Ready", "Verified")]}},
        ns, subresource="status")  # fmt: skip
    spec = model["spec"]
    facts_ = ModelFacts(name=name, model_name=spec["modelName"], version=spec["version"],
                        framework=spec["framework"], uri=uri, digest=digest, size=size)  # fmt: skip
    obj = kube.create(workload.endpoint(i, ns), field_manager=FIELD_MANAGER)
    built = children(obj, facts_, config)
    for child in built:
        apply(kube, child)
    kube.patch(API_VERSION, "OnlineEndpoint", obj["metadata"]["name"], {"status": {
        "observedGeneration": obj["metadata"]["generation"],
        "conditions": [condition("Ready", "Available")]}}, ns, subresource="status")  # fmt: skip
    return 4 + len(built)


def run(
    kube: Kube,
    n: int,
    uri: str,
    facts: tuple[str, int],
    config: OperatorConfig,
    ns: str,
    concurrency: int,
) -> tuple[float, int]:
    """(seconds until every request returned, requests made)."""
    kube.path(API_VERSION, "Model", ns)  # discovery before the clock, as the operator has it
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        counts = list(pool.map(lambda i: one(kube, i, uri, facts, config, ns), range(n)))
    return time.monotonic() - started, sum(counts)
