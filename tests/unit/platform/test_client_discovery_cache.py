"""The client's discovery: served kinds are asked at most every DISCOVERY_TTL (a request per
reconcile pass otherwise), a kind looked up and not found is asked again after NEGATIVE_TTL
(its CRD may be being installed), and `max_age=0` always asks."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.k8s import client as k8s_client
from mlkube.k8s.client import Kube


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(k8s_client, "time", clock)
    return clock


def stub(served: dict[str, list[str]]) -> tuple[Kube, list[str]]:
    kube = Kube(transport=object())  # type: ignore[arg-type]
    asked: list[str] = []

    def request(method: str, path: str, **_: Any) -> dict[str, Any]:
        asked.append(path)
        group = path.removeprefix("/apis/")
        if group not in served:
            raise k8s_client.ApiError(404, "NotFound", path)
        kinds = served[group]
        return {
            "resources": [{"kind": k, "name": k.lower() + "s", "namespaced": True} for k in kinds]
        }

    kube.request = request  # type: ignore[method-assign,assignment]
    return kube, asked


def test_served_kinds_are_cached_for_the_ttl(clock: Clock) -> None:
    kube, asked = stub({"monitoring.coreos.com/v1": ["ServiceMonitor", "PrometheusRule"]})
    for _ in range(5):
        assert "ServiceMonitor" in kube.served_kinds("monitoring.coreos.com/v1")
    assert kube.resource("monitoring.coreos.com/v1", "PrometheusRule") == ("prometheusrules", True)
    assert len(asked) == 1
    clock.now += k8s_client.DISCOVERY_TTL + 1
    kube.served_kinds("monitoring.coreos.com/v1")
    assert len(asked) == 2
    kube.served_kinds("monitoring.coreos.com/v1", max_age=0)
    assert len(asked) == 3


def test_an_unserved_kind_costs_one_request_per_negative_ttl(clock: Clock) -> None:
    kube, asked = stub({})
    for _ in range(5):
        with pytest.raises(k8s_client.ApiError) as err:
            kube.resource("gateway.networking.k8s.io/v1", "HTTPRoute")
        assert err.value.reason == "KindNotServed"
    assert len(asked) == 1
    clock.now += k8s_client.NEGATIVE_TTL + 0.1
    with pytest.raises(k8s_client.ApiError):
        kube.resource("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert len(asked) == 2
