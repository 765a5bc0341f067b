"""B11: "traffic applied" is decided from what the router processes actually loaded.

The operator side (builders hash the ConfigMap text, `router_poll` asks each replica,
`traffic_applied` compares) runs against real router processes on loopback.
"""

from __future__ import annotations

from typing import Any

from router_harness import Upstream, base_config, wait_until

from mlkube import contract as c
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_router import build_router_configmap, router_config_hash
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.router_poll import fetch_config_hash, ready_pod_ips, router_config_hashes
from mlkube.devcluster.procs import free_port
from mlkube.reconcile.router_config import traffic_applied

OWNER = EndpointRef(name="credit", namespace="ml", uid="uid-1")


def spec(blue: int) -> OnlineEndpointSpec:
    return OnlineEndpointSpec.model_validate(
        {
            "deployments": [
                {"name": "blue", "model": "m1"},
                {"name": "green", "model": "m1"},
            ],
            "traffic": {"blue": blue, "green": 100 - blue},
        }
    )


def test_applied_only_once_every_router_loaded_the_configmap(
    fresh_upstreams: dict[str, Upstream], start_router: Any
) -> None:
    config = OperatorConfig(serving_image="img")

    def configmap_text(blue: int) -> bytes:
        configmap = build_router_configmap(OWNER, spec(blue), config)
        return str(configmap["data"][c.ROUTER_CONFIG_FILE]).encode()

    routers = [start_router(base_config(fresh_upstreams), wait_ready=False) for _ in range(2)]
    ports = [router.port for router in routers]

    def observed() -> list[str | None]:
        return [fetch_config_hash("127.0.0.1", port) for port in ports]

    # Exactly the bytes the kubelet would mount (the Service URLs do not resolve here, which
    # the config endpoint does not care about).
    for router in routers:
        router.config_dir.write({c.ROUTER_CONFIG_FILE: configmap_text(70)})
    expected = router_config_hash(OWNER, spec(70), config)
    wait_until(lambda: traffic_applied(expected, observed()))

    # A new split reaches the first router's mount only: not applied until the second has it.
    routers[0].config_dir.write({c.ROUTER_CONFIG_FILE: configmap_text(50)})
    new = router_config_hash(OWNER, spec(50), config)
    wait_until(lambda: observed()[0] == new)
    assert observed()[1] == expected
    assert not traffic_applied(new, observed())
    routers[1].config_dir.write({c.ROUTER_CONFIG_FILE: configmap_text(50)})
    wait_until(lambda: traffic_applied(new, observed()))

    assert fetch_config_hash("127.0.0.1", free_port(), timeout=0.5) is None  # nobody there
    assert router_config_hashes(["127.0.0.1"], ports[0]) == [new]


def test_only_ready_running_pods_are_asked() -> None:
    def pod(ip: str, ready: str = "True", phase: str = "Running", **meta: Any) -> dict[str, Any]:
        return {
            "metadata": meta,
            "status": {
                "phase": phase,
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": ready}],
            },
        }

    pods = [
        pod("10.0.0.2"),
        pod("10.0.0.1"),
        pod("10.0.0.3", ready="False"),
        pod("10.0.0.4", phase="Pending"),
        pod("10.0.0.5", deletionTimestamp="2026-01-01T00:00:00Z"),
    ]
    assert ready_pod_ips(pods) == ["10.0.0.1", "10.0.0.2"]
