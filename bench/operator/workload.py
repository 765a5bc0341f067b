"""The objects `make bench-operator` creates: N Models and N OnlineEndpoints with two
deployments each (blue and green), key auth and a mirror on every tenth, and the traffic change
applied to all of them at once. Pure: manifests and the routing each endpoint's router config
must carry, so the same definitions drive the operator run, the floor and the unit test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube

NAMESPACE = "bench"


def model_name(i: int) -> str:
    return f"m{i:04d}"


def endpoint_name(i: int) -> str:
    return f"e{i:04d}"


def index_of(endpoint: str) -> int:
    return int(endpoint[1:])


def is_special(i: int) -> bool:
    """Every tenth endpoint has key auth and a mirror (a Secret and mirror config more)."""
    return i % 10 == 0


def model(i: int, uri: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": model_name(i), "namespace": namespace},
        "spec": {
            "modelName": "credit-risk",
            "version": str(i + 1),
            "framework": "onnx",
            "artifact": {"uri": uri},
        },
    }


def routing(i: int, changed: bool = False) -> dict[str, dict[str, int]]:
    """The traffic and mirror the endpoint's spec (and so its router config) carries."""
    if is_special(i):  # a mirrored deployment takes no live traffic: the change is the mirror
        return {"traffic": {"blue": 100, "green": 0}, "mirror": {"green": 20 if changed else 10}}
    return {"traffic": {"blue": 30, "green": 70} if changed else {"blue": 70, "green": 30},
            "mirror": {}}  # fmt: skip


def endpoint(i: int, namespace: str = NAMESPACE) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deployments": [
            {"name": "blue", "model": model_name(i), "replicas": 1},
            {"name": "green", "model": model_name(i), "replicas": 1},
        ],
        "traffic": routing(i)["traffic"],
    }
    if is_special(i):
        spec["mirror"] = routing(i)["mirror"]
        spec["auth"] = {"mode": "key"}
    return {
        "apiVersion": API_VERSION,
        "kind": "OnlineEndpoint",
        "metadata": {"name": endpoint_name(i), "namespace": namespace},
        "spec": spec,
    }


def traffic_patch(i: int) -> dict[str, Any]:
    """The merge patch of the traffic change (`routing(i, changed=True)`)."""
    want = routing(i, changed=True)
    patch: dict[str, Any] = {"traffic": want["traffic"]}
    if is_special(i):
        patch["mirror"] = want["mirror"]
    return {"spec": patch}


def create_all(kube: Kube, objects: list[dict[str, Any]], concurrency: int) -> None:
    """Create every object at once (a pool of `concurrency` clients' worth of requests)."""
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(kube.create, objects))


def patch_traffic(kube: Kube, n: int, concurrency: int, namespace: str = NAMESPACE) -> None:
    def one(i: int) -> None:
        kube.patch(API_VERSION, "OnlineEndpoint", endpoint_name(i), traffic_patch(i), namespace)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
