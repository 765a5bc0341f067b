"""What the benchmark sees of the operator's work, from watches timed on arrival (bench/pipeline's
kwatch.Recorder): each Model's creation and verification, each endpoint's creation and first
Ready (status.observedGeneration caught up), each endpoint's first child Deployment, and the
routing each router ConfigMap carries."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from kwatch import Recorder  # bench/pipeline's watch, shared

from mlkube.builders.names import router_name
from mlkube.contract import API_VERSION, ROUTER_CONFIG_FILE
from mlkube.k8s import Kube


def endpoint_state(obj: dict[str, Any]) -> str:
    """Ready once Ready=True for the current generation, else Created."""
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    current = status.get("observedGeneration") == obj["metadata"].get("generation")
    return "Ready" if ready and current else "Created"


def model_state(obj: dict[str, Any]) -> str:
    """Ready once verified (Ready=True), else Created."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return "Ready" if ready else "Created"


def routing_key(routing: dict[str, Any]) -> str:
    """One string per (traffic, mirror): what a router config is compared by."""
    return json.dumps({"traffic": routing.get("traffic") or {},
                       "mirror": routing.get("mirror") or {}}, sort_keys=True)  # fmt: skip


def configmap_routing(obj: dict[str, Any]) -> str | None:
    text = (obj.get("data") or {}).get(ROUTER_CONFIG_FILE)
    if text is None:
        return None
    doc = json.loads(text)
    # The router config drops mirror entries at 0 and keeps traffic as the spec has it.
    return routing_key({"traffic": doc.get("traffic"), "mirror": doc.get("mirror")})


def deployment_available(obj: dict[str, Any]) -> str:
    want = (obj.get("spec") or {}).get("replicas", 1)
    have = (obj.get("status") or {}).get("availableReplicas") or 0
    return "Available" if have >= want else "Seen"


def owner_endpoint(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "OnlineEndpoint":
            return str(ref["name"])
    return None


class Watchers:
    """Endpoints, Deployments and ConfigMaps of one namespace, watched from before creation."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.endpoints = Recorder(kube, API_VERSION, "OnlineEndpoint", namespace, endpoint_state)
        self.deployments = Recorder(kube, "apps/v1", "Deployment", namespace, lambda _: "Seen")
        self.configmaps = Recorder(kube, "v1", "ConfigMap", namespace, configmap_routing)
        self.models = Recorder(kube, API_VERSION, "Model", namespace, model_state)
        self.all = (self.endpoints, self.deployments, self.configmaps, self.models)

    def __enter__(self) -> Watchers:
        for r in self.all:
            r.__enter__()
        return self

    def __exit__(self, *_: object) -> None:
        for r in self.all:
            r.__exit__()

    def first_child(self) -> dict[str, float]:
        """endpoint -> arrival of its first Deployment."""
        out: dict[str, float] = {}
        with self.deployments.cond:
            for name, obj in self.deployments.objects.items():
                owner = owner_endpoint(obj)
                seen = self.deployments.seen.get(name, {}).get("Seen")
                if owner and seen is not None:
                    out[owner] = min(seen, out.get(owner, seen))
        return out

    def routed(self, endpoints: list[str], want: Callable[[str], str]) -> dict[str, float]:
        """endpoint -> arrival of its router ConfigMap carrying `want(endpoint)`."""
        out = {}
        with self.configmaps.cond:
            for ep in endpoints:
                seen = self.configmaps.seen.get(router_name(ep), {}).get(want(ep))
                if seen is not None:
                    out[ep] = seen
        return out


def wait_until(recorder: Recorder, done: Callable[[], bool], timeout: float, what: str) -> float:
    """Block until `done()` (checked at each event); the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    with recorder.cond:
        while not done():
            if recorder.error is not None:
                raise RuntimeError(f"watch {recorder.path} failed: {recorder.error}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: not within {timeout:.0f}s")
            recorder.cond.wait(min(left, 1.0))
    return time.monotonic()


def ready_times(recorder: Recorder, names: list[str]) -> dict[str, float]:
    return {n: recorder.seen[n]["Ready"] for n in names if "Ready" in recorder.seen.get(n, {})}
